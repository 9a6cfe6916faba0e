"""The live feed: one Kafka consumer per process (:mod:`api.live.feed`) fans events out through
the hub (:mod:`api.live.hub`) to websocket clients, each behind its own bounded, coalescing
queue (:mod:`api.live.queue`)."""
