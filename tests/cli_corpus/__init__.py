"""The bad-input corpus (``bad_inputs.yaml``) and the one way to run a case of it (:mod:`.runner`)."""
