"""The mailchimp service's contract: ``mailchimp.proto`` and the code ``m3o gen`` writes from it."""
