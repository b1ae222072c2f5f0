"""The emails service: templated emails through SMTP, SendGrid or the local outbox."""
