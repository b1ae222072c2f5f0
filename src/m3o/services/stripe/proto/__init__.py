"""The stripe service's contract: ``stripe.proto`` and the code ``m3o gen`` writes from it."""
