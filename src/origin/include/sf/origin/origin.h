// The origin role: packages live streams into CMAF segments and parts, keeps a bounded sliding
// window of them in memory, and serves LL-HLS (multivariant and media playlists, blocking
// reloads, preload hints, delta updates) and DASH over the same bytes at /live/<stream>/...
// Streams arrive through open_stream(): in `streamflex all` ingest feeds it in-process.
// Threads: a sink's calls for one stream come from one thread at a time (the publisher's); HTTP
// requests are served on every I/O context and read immutable snapshots without locks.
// Construct/start/stop on the main thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "sf/auth/token_access.h"
#include "sf/core/metrics.h"
#include "sf/media/frame.h"
#include "sf/net/io_pool.h"

namespace sf::origin {

struct Config {
  std::string listen = "127.0.0.1:8080";
  std::chrono::milliseconds segment_target{2000};    // a segment starts on a keyframe once this passed
  std::chrono::milliseconds part_target{500};        // parts never longer than this
  std::int64_t window_segments = 6;                  // complete segments listed
  std::int64_t part_hold_back_parts = 3;             // PART-HOLD-BACK = this many part targets
  std::chrono::milliseconds unpublish_grace{30000};  // how long a stream stays after its publisher left
  std::int64_t max_streams = 1000;
  std::string web_root;                               // when set, / serves the player page from here
  std::string ingest_secret;                          // CMAF ingest at /ingest/<stream>/...; empty: off
  std::int64_t ingest_max_object = 32 * 1024 * 1024;  // largest pushed unit (init, or moof+mdat), bytes
  std::chrono::milliseconds ingest_idle{10000};       // a pushed stream with no object for this long ends
  // Per stream (StreamSettings), not a configuration key: false serves standard HLS (whole
  // segments only: no EXT-X-PART, PRELOAD-HINT or blocking reloads) and a DASH MPD without
  // low-latency signalling.
  bool low_latency = true;
};

// Where a stream's media time meets the wall clock: when its frames arrived at the platform. The
// input side that sees frames arrive (ingest's handler, ahead of a transcoder's delay) marks them;
// the packager maps media time onto EXT-X-PROGRAM-DATE-TIME and the MPD's timeline from the
// earliest implied start (arrival minus media time) marked before it publishes its first part:
// a publisher's first frames often come late and in a burst (its connection being set up while
// its encoder runs), and the frames after them show how late. Without marks the packager uses
// the arrivals it sees itself. Any thread.
class ArrivalClock {
 public:
  struct Mark {
    double media_seconds = 0;  // the frame's decode time, in seconds of its track's timescale
    std::int64_t wall_ms = 0;  // wall clock of its arrival, ms since the Unix epoch
  };
  // Keeps the mark whose arrival minus media time is the smallest.
  void mark(double media_seconds, std::int64_t wall_ms);
  std::optional<Mark> best() const;

 private:
  mutable std::mutex mu_;
  std::optional<Mark> best_;
};

// One stream's delivery settings, from the control plane's stream record; unset ones take the
// origin's Config. Applied when a publish opens the stream: a stream republished with different
// settings starts a new window (numbers go on, so caches stay right).
struct StreamSettings {
  bool low_latency = true;                      // false: standard HLS
  std::chrono::milliseconds part_target{0};     // 0: Config::part_target
  std::chrono::milliseconds segment_target{0};  // 0: Config::segment_target
  std::shared_ptr<const ArrivalClock> arrival;  // this publish's arrival mark; null: the packager's own
};

// One stream's input: tracks and frames in decode order per track, from one thread at a time
// (the publisher's). Destroying it ends the publish; the stream stays for unpublish_grace.
class StreamSink {
 public:
  virtual ~StreamSink() = default;
  virtual void on_track(const media::TrackConfig& track) = 0;
  virtual void on_frame(const media::MediaFrame& frame) = 0;
};

// Viewer tokens (sf/auth/token_access.h): requests for a stream in `protected_streams` need a valid
// token (query parameter `token`, or an edge's X-SF-Token header), else 403; their responses carry
// X-SF-Access: token, and playlists and MPDs asked for with ?token= name every URL with it.
struct ViewerAccess {
  std::shared_ptr<const auth::ProtectedStreams> protected_streams;  // read per request, never blocks
  std::shared_ptr<const auth::TokenChecker> tokens;
};

class Origin {
 public:
  Origin(net::IoPool& pool, Config config, Metrics& metrics);
  ~Origin();

  // Starts (or restarts, as a discontinuity) a stream; any thread. nullptr past max_streams.
  std::unique_ptr<StreamSink> open_stream(std::string_view name, const StreamSettings& settings = {});
  void set_viewer_access(ViewerAccess access);  // before start()
  void start();
  void stop();
  std::uint16_t port() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace sf::origin
