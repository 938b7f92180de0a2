// The standalone transcode role's parts: an RTMP listener (ingest's server) that takes relays from
// ingest nodes, each stream transcoded to its ladder and pushed as CMAF to one origin.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "sf/auth/key_store.h"
#include "sf/ingest/ingest.h"
#include "sf/push/cmaf_pusher.h"
#include "sf/transcode/transcoder.h"

namespace sf::app {

// Accepts a publish whose name is "<stream>:<secret>" with `secret` (compared in constant time)
// as stream <stream>; with an empty `secret`, any valid stream name (a ":..." suffix ignored).
// Keys cannot be created, listed or revoked here (errc::unsupported).
std::unique_ptr<auth::KeyStore> make_relay_key_store(std::string secret);

// Each accepted relay: transcoded (the configured profile, keyframes on `segment_target`) and
// pushed to the origin, program date time anchored on the ingest node's arrival clock when the
// relay sends one and `trust_relay_clock` (relays are authenticated by a secret), else on the
// relayed frames' arrival here.
std::shared_ptr<ingest::Observer> make_push_feeder(transcode::Transcoder& transcoder, push::Pusher& pusher,
                                                   std::chrono::milliseconds segment_target, bool trust_relay_clock);

}  // namespace sf::app
