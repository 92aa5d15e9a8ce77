"""The results pages of a survey: summaries, charts, individual responses, CSV export."""
