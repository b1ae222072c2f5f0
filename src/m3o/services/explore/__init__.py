"""The explore service: the public face of the catalog (index, search, pricing)."""
