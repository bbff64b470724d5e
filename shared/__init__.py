"""The code behind the hire-provisioning function: event contract, adapters and decisions."""
