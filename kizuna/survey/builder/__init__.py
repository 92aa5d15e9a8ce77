"""The survey builder: surveys, their pages (sections) and questions."""
