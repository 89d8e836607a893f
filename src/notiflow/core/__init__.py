"""Building blocks shared by every domain package: time, errors, pagination."""
