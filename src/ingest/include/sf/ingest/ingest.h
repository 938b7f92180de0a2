// The ingest role: an RTMP server that accepts publishers, checks their stream keys, turns their
// FLV payloads into tracks and MediaFrames, keeps live statistics and tells observers about each
// publish (start, tracks, frames, stop with a reason).
// Threads: sessions live on the I/O contexts of the pool; observers are called on the publishing
// session's I/O thread and must not block. Construct/start/stop from the main thread;
// streams() and the metrics collector from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sf/auth/key_store.h"
#include "sf/core/metrics.h"
#include "sf/media/frame.h"
#include "sf/net/io_pool.h"

namespace sf::ingest {

struct Config {
  std::string rtmp_listen = "127.0.0.1:1935";
  std::int64_t max_connections = 1000;
  std::chrono::milliseconds handshake_timeout{5000};  // accept until publish or play is asked
  std::chrono::milliseconds idle_timeout{10000};      // no byte from the peer for this long
  std::int64_t max_message_size = 8 * 1024 * 1024;    // one RTMP message (a 4K keyframe fits)
  std::int64_t max_chunk_size = 1024 * 1024;          // largest Set Chunk Size accepted
  std::int64_t window_ack_size = 2500000;             // announced to publishers
  std::int64_t out_chunk_size = 4096;
  std::chrono::milliseconds max_timestamp_jump{3000};  // larger gaps are jumps
  // What a jump does: "discontinuity" (the times go on continuously and the frames after it carry
  // a new MediaFrame::epoch, so the packager starts a discontinuity) or "rebase" (continuous
  // times, nothing signalled).
  std::string timestamp_jump = "discontinuity";
  std::string record_dir;  // non-empty: write each publish as FLV here
  // Wake for a publisher's bytes only once this much media (at its measured bitrate) is buffered
  // in the kernel (SO_RCVLOWAT): fewer wakeups and less CPU per stream, at up to this much added
  // ingest latency. 0: read every byte as it arrives (lowest latency).
  std::chrono::milliseconds read_batch{0};
  std::int64_t max_stream_labels = 200;  // per-stream metric series at most
  // Relay (push) every publish to these RTMP servers: comma-separated rtmp://host[:port]/app[/name],
  // "{stream}" in the name replaced by the stream (no name: the stream's name).
  std::string relay;
  std::string relay_secret;                           // appended to the publish name as ":<secret>"
  std::int64_t relay_queue_bytes = 8 * 1024 * 1024;   // per link; beyond, drop to the next keyframe
  std::chrono::milliseconds relay_timeout{5000};      // connect through publish, and each write
  std::chrono::milliseconds relay_max_backoff{5000};  // longest wait between reconnection attempts
  bool relay_clock = true;  // send peers this node's arrival clock ("@streamflex" data message, relay.h)
};

struct PublishInfo {
  std::string stream;  // from the key store, never the key itself
  std::string key_id;
  std::string app;
  std::string remote;           // peer address:port
  std::string encoder;          // onMetaData "encoder", if sent
  std::int64_t started_ms = 0;  // wall clock
  std::uint64_t session_id = 0;
  std::string profile{};  // transcoding ladder from the stream's settings ("": the configured default)
  // Delivery settings from the stream's record, as in force when the publish started ("", 0: the
  // origin's defaults).
  std::string latency{};
  std::int64_t part_target_ms = 0, segment_target_ms = 0;
};

// What a consumer of one publish gets: tracks, frames and the end, on the publisher's I/O thread.
// Must not block; keeps what it needs (frames share their buffers, holding them is cheap).
class PublishHandler {
 public:
  virtual ~PublishHandler() = default;
  virtual void on_track(const media::TrackConfig& track) {}
  virtual void on_frame(const media::MediaFrame& frame) {}
  // An upstream node's arrival clock, from a relay's "@streamflex" data message: the frame at
  // `media_ms` of this publish's timeline arrived there at `wall_ms` (ms since the Unix epoch).
  // Any publisher can send one: only a handler whose publishes are authenticated relays may trust it.
  virtual void on_relay_clock(std::int64_t media_ms, std::int64_t wall_ms) {}
  // reason: "unpublished", "disconnected", "taken_over", "idle_timeout", "shutdown",
  // "malformed", "message_too_large", "unsupported_codec", ...
  virtual void on_stop(std::string_view reason) {}
};

// What later roles plug in (packagers, recorders, analytics): asked at each publish start for a
// handler of that publish (nullptr: not interested). Called on the publisher's I/O thread.
class Observer {
 public:
  virtual ~Observer() = default;
  virtual std::unique_ptr<PublishHandler> on_publish_start(const PublishInfo& info) = 0;
};

struct StreamStats {
  double bitrate_bps = 0;          // over the last second
  double fps = 0;                  // video frames per second over the last second
  double keyframe_interval_s = 0;  // media time between the last two keyframes
  std::uint64_t bytes = 0;
  std::uint64_t video_frames = 0;
  std::uint64_t audio_frames = 0;
  std::uint64_t keyframes = 0;
  std::uint64_t dropped_frames = 0;   // before a sequence header, or late
  std::uint64_t late_frames = 0;      // decode time went backwards
  std::uint64_t timestamp_jumps = 0;  // rebased, or signalled as discontinuities
};

struct StreamSnapshot {
  PublishInfo info;
  StreamStats stats;
  std::optional<media::TrackConfig> video;
  std::optional<media::TrackConfig> audio;
};

class Ingest {
 public:
  Ingest(net::IoPool& pool, Config config, auth::KeyStore& keys, Metrics& metrics);
  ~Ingest();

  void add_observer(std::shared_ptr<Observer> observer);  // before start()
  void start();
  // Stops accepting and ends every session (reason "shutdown"); returns at once.
  void stop();
  std::uint16_t port() const;
  std::vector<StreamSnapshot> streams() const;
  // Ends the live publish of `stream` if it uses the key `key_id` (any key when empty), with
  // `reason` ("key_revoked", "stream_deleted"); returns how many were told to stop. Any thread.
  int disconnect(std::string_view stream, std::string_view key_id, std::string_view reason);

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace sf::ingest
