"""The address book: clients with phone, operator code, tag and time zone."""
