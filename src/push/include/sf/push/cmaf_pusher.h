// CMAF pushed to an origin over HTTP: DASH-IF Live Media Ingest interface 1, as the standalone
// transcode role's output. Each representation (a ladder rung, "360p", or "audio") is POSTed to
// <origin>/ingest/<stream>/Streams(<name>): its init segment (ftyp+moov, with the rung's declared
// rate in btrt), then one request per CMAF chunk (moof+mdat) as soon as the chunk holds
// `chunk_duration` of media or the next keyframe starts. Requests go over a pooled keep-alive
// client (one connection per representation at most) with "Authorization: Bearer <secret>"; a
// chunk's body is its header plus the frames' own Bytes, sent in one gather write (no copy).
// Per representation a bounded queue: above `queue_bytes` what is queued is dropped and the
// representation skips to its next keyframe (counted). An origin that fails or is down is
// retried with doubling backoff; after a failure the init segment is sent again and the
// representation resumes at a keyframe. A withdrawn track (a dropped rung) sends "DELETE
// <origin>/ingest/<stream>/Streams(<name>)" after its last chunk, so the origin stops waiting for it
// (it pushes its init again if it comes back). When the sink is released (the transcoder's stream
// ended) the queues drain and "DELETE <origin>/ingest/<stream>/" ends the stream at the origin.
// Each chunk is preceded by a ProducerReferenceTimeBox (prft, ISO/IEC 14496-12 8.16.5; DASH-IF
// ingest allows it) when the stream has an ArrivalAnchor: the wall clock at which the chunk's first
// sample arrived at the platform, by the anchor, so the origin's program date time is the
// source's arrival rather than the push's.
// Threads: the Sink is called by one thread at a time (the transcoder's workers); each stream's
// HTTP work runs on one I/O context of the pool. Construct, stop and destroy on the main thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "sf/core/metrics.h"
#include "sf/net/io_pool.h"
#include "sf/transcode/transcoder.h"

namespace sf::push {

struct Config {
  std::string origin_url;                         // http://host:port
  std::string secret;                             // sent as Authorization: Bearer <secret>
  std::chrono::milliseconds chunk_duration{200};  // media per pushed chunk (0: one frame per chunk)
  std::int64_t queue_bytes = 8 * 1024 * 1024;     // per representation
  std::chrono::milliseconds timeout{5000};        // per request
  std::chrono::milliseconds max_backoff{5000};    // longest wait between attempts (doubling from 100 ms)
  std::int64_t max_stream_labels = 200;           // per-stream metric series at most
};

// Where a stream's media arrived at the platform: the frame whose arrival minus media time is the
// smallest among those marked (a publisher's first frames come late and in a burst; those after
// show how late). Marked by the input side, read by the pusher. Any thread.
class ArrivalAnchor {
 public:
  struct Mark {
    double media_seconds = 0;  // the frame's decode time in seconds (the transcoder keeps the source's times)
    std::int64_t wall_ms = 0;  // its arrival, ms since the Unix epoch
  };
  void mark(double media_seconds, std::int64_t wall_ms) {
    std::lock_guard lock(mu_);
    if (!best_ || double(wall_ms) - media_seconds * 1000 < double(best_->wall_ms) - best_->media_seconds * 1000)
      best_ = Mark{media_seconds, wall_ms};
  }
  std::optional<Mark> best() const {
    std::lock_guard lock(mu_);
    return best_;
  }

 private:
  mutable std::mutex mu_;
  std::optional<Mark> best_;
};

// A stream's delivery settings for the origin, sent with every pushed object (the origin applies
// them when the stream starts there, whichever request comes first) as headers, each only when
// set: "StreamFlex-Latency: ll-hls|hls", "StreamFlex-Part-Target: <ms>",
// "StreamFlex-Segment-Target: <ms>". Authenticated as the push is (its Bearer secret).
// Source discontinuities (MediaFrame::epoch, a timestamp jump): a chunk holds frames of one epoch
// (a rise starts a new chunk), sent with "StreamFlex-Epoch: <n>" when not 0; the origin stamps its
// frames with it, so its packager starts the discontinuity there.
struct StreamSettings {
  std::string latency;  // "", "ll-hls" or "hls"
  std::int64_t part_target_ms = 0, segment_target_ms = 0;
};

// A prft box (version 1, flags 24: the time the sample was captured, here its arrival) saying
// that `media_time` (in the track's timescale) of track `track_id` arrived at `wall_ms`.
Bytes write_prft(std::uint32_t track_id, std::int64_t wall_ms, std::uint64_t media_time);

struct PushStats {
  std::uint64_t objects = 0;   // requests answered 2xx (init segments and chunks)
  std::uint64_t bytes = 0;     // body bytes of those
  std::uint64_t failures = 0;  // requests that failed or were refused
  std::uint64_t dropped = 0;   // chunks dropped: queue full, or skipped to a keyframe after a failure
  std::uint64_t queue_bytes = 0;
};

class Pusher {
 public:
  // Throws std::invalid_argument for an origin_url that is not http://host:port.
  Pusher(net::IoPool& pool, Config config, Metrics& metrics);
  ~Pusher();
  // The sink of one stream's transcoded output. Releasing it ends the stream (see above). With an
  // anchor, each chunk carries a prft with its arrival time (see above); `settings` go with every
  // object (see StreamSettings).
  std::shared_ptr<transcode::Sink> open_stream(std::string stream, std::shared_ptr<const ArrivalAnchor> anchor = {},
                                               StreamSettings settings = {});
  // Stops every stream's requests (shutdown); call before the pool stops.
  void stop();
  PushStats totals() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace sf::push
