# English times as "5:11 PM", not Django's "5:11 p.m.": sentences that end with a
# time ("Created by Ada on Nov. 27, 2026, 5:11 PM.") would otherwise end in "p.m..".
DATETIME_FORMAT = "N j, Y, g:i A"
TIME_FORMAT = "g:i A"
SHORT_DATETIME_FORMAT = "m/d/Y g:i A"
