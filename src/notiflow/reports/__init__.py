"""The daily statistics e-mail: what ran the day before, sent once a day by one of the engines."""
