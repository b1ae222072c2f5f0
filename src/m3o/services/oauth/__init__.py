"""The oauth service: sign up and log in with Google or GitHub."""
