"""The projects service: projects, their members, and the billing accounts that pay."""
