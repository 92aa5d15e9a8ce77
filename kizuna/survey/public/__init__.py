"""The pages respondents see (/s/<public id>/, /s/i/<token>/) and the writes behind them."""
