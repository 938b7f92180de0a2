// One stream's transcoding: a decode stage on its own strand of the worker pool (decode, scale
// once per rung, force keyframes on the grid, decide drops), one strand per rung (encode), and the
// Sequencer that hands everything to the sink in input order. Fed by one input thread at a time.
// A rung dropped for lag comes back (RestorePolicy) once the stream has been calm for a while.
#pragma once

#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>

#include <atomic>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "audio.h"
#include "av.h"
#include "encoder.h"
#include "scaler.h"
#include "sequencer.h"
#include "sf/transcode/transcoder.h"

namespace sf::transcode {

// Wall time the worker pool's tasks took, every stream together: the pool's load, counting the
// time other work on the machine takes from its threads (a preempted task takes longer). Any thread.
struct PoolLoad {
  std::atomic<std::int64_t> busy_ns{0};
  std::size_t threads = 1;
};

// When a rung dropped for lag comes back: hysteresis against flapping. Decode strand only; times
// are seconds from any fixed origin, passed in (tests drive it with made-up times and loads).
// - The stream is calm while its lag (media queued) stays at most `calm_lag` and the pool's load
//   (busy fraction over the last sample) plus the candidate rung's own measured load stays at most
//   `max_load`; a picture that breaks either, a drop or a restore starts the calm over.
// - The smallest dropped rung comes back, at a keyframe on the grid, once the stream has been
//   calm for that rung's hold: `hold` after its first drop, doubled (up to `max_hold`) each time it
//   is dropped again within `max_hold` of coming back; a rung that stayed up longer starts over.
class RestorePolicy {
 public:
  struct Options {
    double hold = 10;       // seconds calm before the first try
    double max_hold = 320;  // the back-off's ceiling, and how long a restored rung must last to reset it
    double calm_lag = 0.5;  // media seconds queued at most
    double max_load = 0.7;  // the pool's busy fraction with the rung back, at most
  };
  explicit RestorePolicy(Options o) : o_(o) {}
  void on_drop(std::size_t rung, double now);
  void on_restore(std::size_t rung, double now);
  void observe_lag(double now, double lag_seconds);
  void observe_load(double now, double load_with_rung);
  bool ready(std::size_t rung, double now) const { return now - calm_since_ >= hold(rung); }
  double hold(std::size_t rung) const;
  const Options& options() const { return o_; }

 private:
  struct Rung {
    double hold = 0;
    double restored_at = -1;
  };
  Options o_;
  std::map<std::size_t, Rung> rungs_;  // by plan index
  double calm_since_ = 0;
};

// A picture a rung could be scaled from: the decoded source, or a rung already scaled from it.
struct ScalingCandidate {
  int width = 0, height = 0;
  bool yuv420p = false;
};

// Which of `made` (the decoded source first, then the pictures scaled so far) a rung of
// width x height is scaled from. With cascade, the smallest yuv420p picture at least as large in
// both dimensions, else the source: swscale's bicubic cost follows the size of the picture it
// reads, so this is the cheapest source for every rung of the default and the bench's ladders
// (bench/transcode_ladder.sh MODES=scalers; it costs PSNR against direct scaling, see
// bench/README.md). Without cascade (the default), always the source.
std::size_t scaling_source(const std::vector<ScalingCandidate>& made, int width, int height, bool cascade);

struct PipelineOptions {
  std::string stream;
  Profile profile;
  std::string encoder = "libx264";
  std::int64_t keyframe_ticks = 180000;  // the segment grid in 1/90000
  double max_lag = 2.0;                  // seconds of media queued before the top rung goes
  std::size_t max_queue = 120;           // source frames waiting at most
  ScalerKind scaler = ScalerKind::zimg;
  bool cascade = false;
  bool backpressure = false;  // file input: block the caller instead of dropping
  bool audio_always = false;  // re-encode AAC sources too (transcode.audio=aac)
  RestorePolicy::Options restore;
  std::shared_ptr<PoolLoad> load;  // the worker pool's (null: not measured, taken as idle)
};

class Pipeline : public std::enable_shared_from_this<Pipeline> {
 public:
  using Strand = boost::asio::strand<boost::asio::thread_pool::executor_type>;
  Pipeline(boost::asio::thread_pool& pool, PipelineOptions opt, std::shared_ptr<Sink> sink,
           std::shared_ptr<std::atomic<bool>> stopping);
  ~Pipeline();

  // Input thread.
  void on_track(const media::TrackConfig& track);
  void on_frame(const media::MediaFrame& frame);
  void finish();  // the input ended: flush everything queued, then let go of the sink

  StreamStats stats() const;

 private:
  struct RungState {
    PlannedRung plan;
    std::uint32_t track_id = 0;
    Strand strand;
    // Decode strand only.
    std::unique_ptr<Scaler> scaler;  // made on the rung's first scaled picture
    std::int64_t next_keep = INT64_MIN;
    std::vector<FramePtr> pool;  // scaled pictures, reused once no encoder task holds them
    bool in_plan = true;
    // Rung strand only.
    std::unique_ptr<VideoEncoder> encoder;
    std::uint32_t enc_w = 0, enc_h = 0;
    std::uint32_t version = 0;
    bool withdrawn = false;
    std::atomic<bool> parked{false};  // withdraw() ran: the rung strand holds nothing of it
    std::atomic<bool> failed{false};  // its encoder would not open: never restored
    struct InEncoder {
      std::int64_t pts;
      std::uint64_t slot;  // kept open until the encoder gives the picture's frame back
      std::uint32_t index;
      std::uint32_t epoch;  // the source discontinuity the picture belongs to (MediaFrame::epoch)
    };
    std::uint32_t epoch = 0;  // of the last frame out
    std::deque<InEncoder> in_encoder;
    // Any thread.
    std::atomic<bool> active{true};
    std::atomic<std::int64_t> frames{0};
    std::atomic<std::int64_t> bytes{0};
    std::atomic<std::int64_t> first_pts{INT64_MIN};  // of the first encoded frame
    std::atomic<std::int64_t> last_pts{INT64_MIN};   // of the last encoded frame
    std::atomic<std::int64_t> busy_ns{0};            // wall time in encode()
    std::atomic<std::int64_t> encoded{0};            // pictures given to the encoder
    double rate_bps = 0;                             // bits per second of media; under the pipeline's stats_mu_
    std::int64_t rate_bytes = 0;
    std::int64_t rate_pts = INT64_MIN;
    explicit RungState(Strand s) : strand(std::move(s)) {}
  };

  // Decode strand.
  void decode(std::uint64_t slot, media::MediaFrame frame);
  void set_decoder(media::TrackConfig track);
  void drain_decoder(std::uint64_t slot);
  void picture(std::uint64_t slot, std::uint32_t index, AVFrame* pic);
  void replan(int width, int height);
  // Source rung: held source items go out in `slot`, sorted after the rungs' items of `picture`,
  // up to the first frame presented after `pts` (all of them for INT64_MAX).
  void release_source(std::uint64_t slot, std::uint32_t picture, std::int64_t pts);
  void maybe_drop_rung();
  void drop_rung(RungState& r, const char* why);
  // At a picture forced to a keyframe (`key`), brings the smallest dropped rung back when the
  // RestorePolicy allows; otherwise only observes lag and load.
  void maybe_restore_rung(bool key);
  double rung_load(const RungState& r) const;  // pool busy fraction the rung adds when it runs
  double now_seconds() const;
  // Rung strand.
  void encode(std::shared_ptr<RungState> r, std::uint64_t slot, std::uint32_t index, FramePtr pic, std::int64_t pts,
              bool key, std::uint32_t w, std::uint32_t h, double fps, std::uint32_t epoch);
  // Hands encoded frames to the slots of their pictures (closing them), or to `slot` if unknown.
  void place(RungState& r, std::vector<EncodedFrame>& out, std::uint64_t slot, std::uint32_t index);
  void release_in_encoder(RungState& r);  // closes the slots of pictures the encoder still holds
  void withdraw(std::shared_ptr<RungState> r, std::uint64_t slot);
  void emit(SeqItem& item);
  // Input thread: an audio frame into the sequence (passed through or to the audio strand), and
  // the frames held before video went out.
  void submit_audio(const media::MediaFrame& f);
  void release_held_audio();
  // Audio strand.
  void audio_source(std::uint64_t slot, media::TrackConfig track);
  void audio_frame(std::uint64_t slot, media::MediaFrame frame);
  void audio_flush(std::uint64_t slot);

  boost::asio::thread_pool& pool_;
  PipelineOptions opt_;
  std::shared_ptr<Sink> sink_;
  std::shared_ptr<std::atomic<bool>> stopping_;
  Strand decode_strand_;
  Strand audio_strand_;
  Sequencer seq_;

  // Input thread.
  bool have_video_track_ = false;
  bool skip_to_key_ = false;
  std::uint32_t audio_track_id_ = 0;
  bool audio_passthrough_ = false;
  static constexpr std::size_t kMaxHeldAudio = 256;  // audio frames waiting for the first rung frame
  std::deque<media::MediaFrame> held_audio_;
  std::atomic<bool> audio_transcode_{false};  // written by the input thread, read by stats()
  // Audio strand.
  std::unique_ptr<AudioTranscoder> audio_;
  bool audio_failed_ = false;
  // Decode strand.
  CodecContextPtr decoder_;
  PacketPtr packet_;
  FramePtr decoded_;
  std::vector<std::shared_ptr<RungState>> rungs_;  // largest first
  int plan_w_ = 0, plan_h_ = 0;
  std::int64_t last_pts_ = INT64_MIN;
  std::int64_t last_grid_ = INT64_MIN;
  std::int64_t grid_origin_ = INT64_MIN;  // pts of the first picture
  std::int64_t min_step_ = 0;             // smallest pts step seen: the source frame rate
  // Source discontinuities (MediaFrame::epoch): the highest epoch decoded, the pts of its first
  // frame, and the epoch of the pictures handed to the rungs.
  std::uint32_t epoch_in_ = 0, epoch_out_ = 0;
  std::int64_t epoch_pts_ = INT64_MIN;
  // Source rung (profile.source): the source's items (its track, its frames in decode order) held
  // until the decoder has output the picture they present, then added to that picture's slot,
  // after every rung's frame of it (the packager's leader cuts first). Decode strand.
  std::deque<SeqItem> held_;
  std::size_t held_frames_ = 0;
  std::deque<std::int64_t> source_keys_;  // pts of source keyframes not yet decoded
  std::int64_t last_forced_ = INT64_MIN;  // pts of the last picture forced to a keyframe
  std::shared_ptr<RungState> source_;     // the source rung's statistics
  std::chrono::steady_clock::time_point last_drop_{};
  RestorePolicy restore_;
  double source_fps_ = 30;
  double load_at_ = -1;  // seconds: start of the pool load sample
  std::int64_t load_busy_ = 0;
  double last_load_ = 0;  // the pool's busy fraction over the last sample
  // Any thread.
  std::atomic<bool> video_out_{false};  // a rung track went out: audio may follow it
  std::atomic<double> newest_t_{-1};
  std::atomic<std::int64_t> dropped_rungs_{0};
  std::atomic<std::int64_t> restored_rungs_{0};
  std::atomic<std::int64_t> skipped_frames_{0};
  std::atomic<std::int64_t> audio_frames_{0};
  std::atomic<std::int64_t> cpu_ns_{0};  // worker CPU time spent on this stream
  mutable std::mutex stats_mu_;
  std::vector<std::shared_ptr<RungState>> rungs_snapshot_;  // for stats(), under stats_mu_
  mutable std::mutex speed_mu_;
  double speed_ = 0, speed_media_ = -1;
  std::chrono::steady_clock::time_point speed_since_ = std::chrono::steady_clock::now();
  double emitted_t_ = -1;
  const std::chrono::steady_clock::time_point created_ = std::chrono::steady_clock::now();
};

}  // namespace sf::transcode
