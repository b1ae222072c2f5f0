"""The mailchimp service: customers on the Mailchimp audience, tagged "customer"."""
