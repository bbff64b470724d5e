"""The domain: the hire event, the outcome, the hire record, the rules that decide a
UPN and a licence plan, and the ports the decision depends on. No adapter, no SDK, no I/O."""
