// The transcode service: turns one source stream (tracks and frames, as ingest delivers them) into
// an ABR ladder: the video decoded once, scaled once per rung (cascading from the next larger rung
// where that reads fewer pixels), each rung encoded (libx264 by default, behind VideoEncoder), and
// the audio passed through when it is AAC, else encoded once to AAC-LC 48 kHz stereo.
// Keyframes are forced on the segment grid in source media time, so every rung's keyframes sit at
// the same presentation times. A profile with the source as a rung passes the source's frames
// through as rendition "source" and forces keyframes on source keyframes instead (the first one at
// least a segment target after the last forced one).
//
// Threads: a StreamInput is fed by one thread at a time (the publisher's I/O thread) and never
// blocks it: frames go into bounded per-stream queues and the work runs on the service's worker
// pool (sized to the machine). The Sink of a stream is called by one thread at a time, in order
// (every rung's frame for a source frame, smallest rung first, then the next source frame), from
// the worker pool. When a stream falls behind real time the largest active rung is dropped
// (logged, counted, its track withdrawn); once the stream has been comfortably ahead of real time
// long enough, the smallest dropped rung is restarted at a keyframe on the grid (logged, counted,
// its track announced again). Construct and destroy on the main thread; open_stream from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "sf/core/metrics.h"
#include "sf/media/frame.h"
#include "sf/transcode/ladder.h"

namespace sf::transcode {

struct Config {
  std::string profile = "default";                    // a built-in profile, or one of `profiles`
  std::string profiles;                               // more profiles, see parse_profiles()
  std::string encoder = "libx264";                    // libavcodec H.264 encoder (h264_nvenc, h264_vaapi, ...)
  std::int64_t threads = 0;                           // worker threads; 0: one per core
  std::chrono::milliseconds keyframe_interval{2000};  // the segment grid
  std::chrono::milliseconds max_lag{2000};            // queued media beyond this drops the top rung
  // A dropped rung comes back after the stream has been calm (lag at most max_lag / 4, the pool's
  // load with the rung's measured cost added at most restore_load) for restore_hold; a rung dropped
  // again within restore_max_hold of coming back waits twice as long next time (up to restore_max_hold).
  std::chrono::milliseconds restore_hold{10000};
  std::chrono::milliseconds restore_max_hold{320000};
  double restore_load = 0.7;
  std::int64_t max_queue_frames = 120;   // per stream and per rung; beyond it frames are skipped
  std::string scaler = "zimg";           // zimg (yuv420p sources; others go to swscale) or swscale
  bool cascade = false;                  // scale from the next larger rung when cheaper (costs PSNR)
  std::string audio = "auto";            // auto: AAC passes through, else AAC-LC 48k stereo; aac: always
  std::int64_t max_stream_labels = 200;  // per-stream metric series at most
  bool backpressure = false;             // file input (bench): on_frame blocks when the queue is full, no drops
};

// Where a transcoded stream goes (the packager, in-process or over CMAF ingest). Called in order
// from one thread at a time. A track is announced before its first frame and again when its
// configuration changes; after on_withdraw(track_id) that track sends no more frames.
class Sink {
 public:
  virtual ~Sink() = default;
  virtual void on_track(const media::TrackConfig& track) = 0;
  virtual void on_frame(const media::MediaFrame& frame) = 0;
  virtual void on_withdraw(std::uint32_t track_id) {}
};

// One stream's input. Destroying it flushes what is queued to the sink (asynchronously: the sink
// is released by the pool once the last queued frame is out).
class StreamInput {
 public:
  virtual ~StreamInput() = default;
  virtual void on_track(const media::TrackConfig& track) = 0;
  virtual void on_frame(const media::MediaFrame& frame) = 0;
};

struct StreamStats {
  std::string stream;
  std::string profile;
  double speed = 0;               // media seconds out per wall second over the last 3 s (1: keeping up)
  double cpu_seconds = 0;         // worker CPU time spent decoding, scaling and encoding
  std::int64_t queue_frames = 0;  // source frames waiting to be decoded
  std::int64_t dropped_rungs = 0;
  std::int64_t restored_rungs = 0;  // dropped rungs brought back
  std::int64_t skipped_frames = 0;  // dropped because a queue was full
  bool audio_transcoded = false;    // the source's audio re-encoded to AAC-LC 48 kHz stereo
  std::int64_t audio_frames = 0;    // AAC frames out (either way)
  struct RungStats {
    std::string name;
    bool active = true;
    std::uint32_t width = 0, height = 0;
    std::int64_t declared_bps = 0;
    double bitrate_bps = 0;  // measured over the last seconds
    std::int64_t frames = 0;
  };
  std::vector<RungStats> rungs;
};

class Transcoder {
 public:
  // Throws std::invalid_argument if the profiles do not parse, the encoder is unknown or `audio` is
  // neither "auto" nor "aac".
  Transcoder(Config config, Metrics& metrics);
  ~Transcoder();  // waits for the worker pool to finish what is queued

  // The profile names known: "default", "default-source", "passthrough" and the configured ones.
  std::vector<std::string> profiles() const;
  bool has_profile(std::string_view name) const;
  // A stream with the given profile (empty: the configured default) and keyframe grid (0: the
  // configured keyframe_interval; a stream's own segment target). A passthrough profile returns
  // an input that forwards video and AAC audio to the sink untouched, on the caller's thread, and
  // encodes other audio to AAC-LC 48 kHz stereo on the worker pool (the sink's calls kept in order).
  std::unique_ptr<StreamInput> open_stream(std::string_view stream, std::string_view profile,
                                           std::shared_ptr<Sink> sink,
                                           std::chrono::milliseconds keyframe_interval = {});
  std::vector<StreamStats> stats() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace sf::transcode
