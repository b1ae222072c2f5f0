"""The stripe service: customers' Stripe customers, their cards and payments, the webhook."""
