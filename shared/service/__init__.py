"""The service layer: the decision for one delivery (provisioning), the licence step
and their log line. Imports the domain and its ports only."""
