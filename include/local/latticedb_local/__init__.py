"""The embedded `local` environment: moto, an ECS scheduler stand-in, a fake LatticeDB and a Slack sink.

Nothing in production code imports this package; it only plays the parts AWS, the service and
Slack would play, so a whole deployment can run on one machine.
"""
