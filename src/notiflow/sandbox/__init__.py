"""The sandbox provider: an emulator of the external send API, with faults on demand."""
