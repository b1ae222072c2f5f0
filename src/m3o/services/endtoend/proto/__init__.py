"""The endtoend service's contract: ``endtoend.proto`` and the code ``m3o gen`` writes from it."""
