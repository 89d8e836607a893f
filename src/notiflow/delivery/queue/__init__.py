"""The delivery queue: the messages table *is* the queue. ``scheduling`` holds the scheduler's
SQL, ``claims`` the sender's claims and leases, ``outcomes`` its write-backs."""
