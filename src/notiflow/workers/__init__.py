"""The delivery engines that run, from the heartbeat row each one refreshes."""
