"""The signup service: email signup with a verification code, password recovery, tracking."""
