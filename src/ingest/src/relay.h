// Pushes every accepted publish on to other RTMP servers (as nginx-rtmp's `push`): per publish and
// target one RTMP client connection (handshake, connect, createStream, publish) that forwards the
// sequence headers and frames as FLV tag bodies, the media bytes shared with the publisher's
// message buffers (never copied). An Observer: the handler methods run on the publisher's I/O
// thread and only queue; each link's client runs on an I/O context of the pool. A slow or dead peer
// never slows the publisher: the queue is bounded in bytes, past it the link drops to the next
// keyframe (counted); a dropped connection is retried with a bounded, doubling backoff until the
// publish ends.
// The arrival clock (ingest.relay_clock): right after the publish is accepted, before any media,
// and again when it improves during the publish's first seconds, the link sends an AMF0 data
// message ["@streamflex", {media_ms, arrival_ms}]: the frame at media_ms (the relayed RTMP
// timeline) arrived at this node at arrival_ms (ms since the Unix epoch), by the earliest implied
// start among the frames that arrived in the first 5 s (as the origin's ArrivalClock takes it). A
// StreamFlex transcode node anchors program date time on it instead of on its own, later, arrival;
// other receivers ignore a data message they do not know (nginx-rtmp: no handler; StreamFlex
// `all`: not metadata).
// Timestamp jumps (ingest.timestamp_jump=discontinuity): the relayed times are continuous, so the
// link tells the peer where the jump was: when a frame's MediaFrame::epoch rises it sends
// ["@streamflex", {epoch}] right before that frame, the epoch counted from the connection's first
// frame (0 for the peer's publish). A StreamFlex session takes it from an authenticated relay only
// (auth::PublishGrant::relay: the transcode role's secret matched) and raises its own frames'
// epoch from then on, so a standalone transcode node starts the discontinuity too; other
// receivers ignore it as they ignore the clock.
// Stream settings: with a relay secret the publish name carries the stream's settings as a query
// (relay_settings_query), which the transcode node applies (profile, segment target) and passes on
// to the origin (latency, part and segment targets).
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sf/core/metrics.h"
#include "sf/core/result.h"
#include "sf/ingest/ingest.h"
#include "sf/net/io_pool.h"
#include "sf/rtmp/amf0.h"

namespace sf::ingest {

struct RelayTarget {
  std::string host;
  std::uint16_t port = 1935;
  std::string app;
  std::string name;  // publish name; "{stream}" is replaced by the stream's name
  std::string tc_url;
};

// "rtmp://host[:port]/app[/name]": without a name, the name is "{stream}".
// errc::invalid_argument for anything else.
Result<RelayTarget> parse_relay_url(std::string_view url);

// The publish name a target is sent: its template with the stream filled in, then ":<secret>"
// when a relay secret is configured (what a transcode node checks; see RelayKeyStore).
std::string relay_publish_name(const RelayTarget& target, std::string_view stream, std::string_view secret);

// The stream's settings as a publish-name query for a StreamFlex transcode node:
// "profile=P&latency=L&part_ms=N&segment_ms=N", only those the stream has (its record's, as in
// force at the publish), "" when none. Sent (after '?') only with a relay secret: other servers
// would take the query for part of a stream key. A profile outside [A-Za-z0-9_-] or a latency
// other than "ll-hls"/"hls" is left out.
std::string relay_settings_query(const PublishInfo& info);

// The "@streamflex" AMF0 data message bodies a link sends, and what a receiver reads from one.
std::vector<std::byte> relay_clock_message(std::uint32_t media_ms, std::int64_t arrival_ms);
std::vector<std::byte> relay_epoch_message(std::uint32_t epoch);
struct RelayMessage {
  std::optional<std::int64_t> media_ms, arrival_ms;  // the arrival clock: both or neither
  std::optional<std::uint32_t> epoch;                // a timestamp jump: the frames from the next one on
};
// nullopt: not ["@streamflex", {...}]. Fields missing, not numbers or out of range are left out (a
// 32-bit RTMP time, a wall clock after 1970 and before the year 33658, a 32-bit epoch).
std::optional<RelayMessage> parse_relay_message(const std::vector<rtmp::amf0::Value>& args);

// A receiving publish's epoch: its own timeline's (its own jumps) plus the highest a trusted relay
// announced (the jumps before the relay). Both only rise, so their sum does, at either's jumps.
class RelayedEpoch {
 public:
  // An announced epoch: true when it raises the relayed one (a repeat or an older one does not).
  bool raise(std::uint32_t relayed) {
    if (relayed <= relayed_) return false;
    relayed_ = relayed;
    return true;
  }
  std::uint32_t stamp(std::uint32_t own) const { return own + relayed_; }
  std::uint32_t relayed() const { return relayed_; }

 private:
  std::uint32_t relayed_ = 0;
};

struct RelayMetrics {
  explicit RelayMetrics(prometheus::Registry& r);
  prometheus::Counter& connects;          // publishes accepted by a peer
  prometheus::Counter& connect_failures;  // attempts that did not reach "publishing"
  prometheus::Counter& reconnects;        // attempts after the first of a link
  prometheus::Counter& dropped_frames;    // not forwarded: slow peer, or waiting for a keyframe
  prometheus::Counter& sent_bytes;
  prometheus::Gauge& links_up;  // links publishing to their peer now
};

class Relay final : public Observer {
 public:
  // Throws std::invalid_argument (startup) for a malformed ingest.relay.
  Relay(net::IoPool& pool, const Config& config, Metrics& metrics);
  ~Relay() override;

  std::unique_ptr<PublishHandler> on_publish_start(const PublishInfo& info) override;

 private:
  net::IoPool& pool_;
  std::vector<RelayTarget> targets_;
  Config config_;
  std::shared_ptr<RelayMetrics> metrics_;
};

}  // namespace sf::ingest
