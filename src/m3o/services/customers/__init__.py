"""The customers service: customer records, their life cycle and their sessions."""
