"""The usage service: API calls counted per customer, daily and monthly, kept and ranked."""
