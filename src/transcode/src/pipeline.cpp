#include "pipeline.h"

#include <fmt/format.h>
#include <boost/asio/post.hpp>

#include <cmath>
#include <cstring>
#include <ctime>

#include "sf/core/log.h"

namespace sf::transcode {
namespace asio = boost::asio;
namespace {

AVCodecID codec_id(media::Codec c) {
  switch (c) {
    case media::Codec::h264:
      return AV_CODEC_ID_H264;
    case media::Codec::hevc:
      return AV_CODEC_ID_HEVC;
    case media::Codec::av1:
      return AV_CODEC_ID_AV1;
    case media::Codec::vp9:
      return AV_CODEC_ID_VP9;
    default:
      return AV_CODEC_ID_NONE;
  }
}

constexpr std::uint32_t kRungTrackBase = 10;
constexpr std::uint32_t kSourceTrackId = 9;        // the source rung: clear of the source's ids and the rungs'
constexpr std::uint64_t kSourceArea = UINT64_MAX;  // sorts after every transcoded rung of a picture
constexpr std::size_t kMaxHeld = 32;               // source frames held at most (H.264 reorders up to 16)

std::int64_t thread_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return std::int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// Adds the CPU time of the enclosing scope (on this worker thread) to a stream's counter.
class CpuScope {
 public:
  explicit CpuScope(std::atomic<std::int64_t>& sum) : sum_(sum), start_(thread_cpu_ns()) {}
  ~CpuScope() { sum_.fetch_add(thread_cpu_ns() - start_, std::memory_order_relaxed); }

 private:
  std::atomic<std::int64_t>& sum_;
  std::int64_t start_;
};  // rung i is track 10 + i: clear of the source's ids

// Adds the wall time of the enclosing scope to the pool's load and, for an encode, to its rung's.
class BusyScope {
 public:
  BusyScope(PoolLoad* pool, std::atomic<std::int64_t>* rung)
      : pool_(pool), rung_(rung), start_(std::chrono::steady_clock::now()) {}
  ~BusyScope() {
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start_).count();
    if (pool_) pool_->busy_ns.fetch_add(ns, std::memory_order_relaxed);
    if (rung_) rung_->fetch_add(ns, std::memory_order_relaxed);
  }

 private:
  PoolLoad* pool_;
  std::atomic<std::int64_t>* rung_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace

void RestorePolicy::on_drop(std::size_t rung, double now) {
  auto& r = rungs_[rung];
  if (r.hold == 0 || r.restored_at < 0 || now - r.restored_at >= o_.max_hold)
    r.hold = o_.hold;  // a first drop, or the rung had stayed up long enough: the back-off starts over
  else
    r.hold = std::min(2 * r.hold, o_.max_hold);  // back once and not enough headroom after all
  calm_since_ = now;
}

void RestorePolicy::on_restore(std::size_t rung, double now) {
  rungs_[rung].restored_at = now;
  calm_since_ = now;  // the next rung waits for a calm that includes this one's cost
}

void RestorePolicy::observe_lag(double now, double lag_seconds) {
  if (lag_seconds > o_.calm_lag) calm_since_ = now;
}

void RestorePolicy::observe_load(double now, double load_with_rung) {
  if (load_with_rung > o_.max_load) calm_since_ = now;
}

double RestorePolicy::hold(std::size_t rung) const {
  auto it = rungs_.find(rung);
  return it == rungs_.end() || it->second.hold == 0 ? o_.hold : it->second.hold;
}

Pipeline::Pipeline(asio::thread_pool& pool, PipelineOptions opt, std::shared_ptr<Sink> sink,
                   std::shared_ptr<std::atomic<bool>> stopping)
    : pool_(pool),
      opt_(std::move(opt)),
      sink_(std::move(sink)),
      stopping_(std::move(stopping)),
      decode_strand_(asio::make_strand(pool.get_executor())),
      audio_strand_(asio::make_strand(pool.get_executor())),
      seq_([this](SeqItem& item) { emit(item); }),
      restore_(opt_.restore) {
  packet_.reset(av_packet_alloc());
  decoded_ = make_frame();
}

Pipeline::~Pipeline() = default;

void Pipeline::on_track(const media::TrackConfig& track) {
  if (track.type == media::MediaType::audio) {
    // AAC goes through untouched, shared by every rung; anything else (or AAC when asked) is
    // decoded once and encoded once to AAC-LC 48 kHz stereo on the audio strand.
    audio_track_id_ = track.track_id;
    skipped_frames_ += std::int64_t(held_audio_.size());  // held for the previous configuration
    held_audio_.clear();
    audio_passthrough_ = track.codec == media::Codec::aac && !opt_.audio_always;
    audio_transcode_ = !audio_passthrough_;
    auto slot = seq_.open(1, -1);
    if (audio_transcode_) {
      asio::post(audio_strand_, [self = shared_from_this(), slot, track] { self->audio_source(slot, track); });
      return;
    }
    SeqItem item;
    item.kind = SeqItem::track;
    item.track_config = track;
    seq_.add(slot, std::move(item));
    seq_.done(slot);
    return;
  }
  have_video_track_ = true;
  auto self = shared_from_this();
  auto slot = seq_.open(1, -1);
  asio::post(decode_strand_, [self, slot, track] {
    self->drain_decoder(slot);
    self->set_decoder(track);
    if (self->opt_.profile.source) {
      // The source rung's track goes out with its first frame, after the transcoded rungs' tracks
      // (the smallest rung leads the packager).
      SeqItem item;
      item.kind = SeqItem::track;
      item.area = kSourceArea;
      item.track_config = track;
      item.track_config.track_id = kSourceTrackId;
      item.track_config.name = std::string(kSourceRungName);
      item.track_config.bandwidth = 0;  // the packager measures it
      self->held_.push_back(std::move(item));
      if (!self->source_) self->source_ = std::make_shared<RungState>(asio::make_strand(self->pool_.get_executor()));
      std::lock_guard lk(self->stats_mu_);
      self->source_->plan.rung.name = std::string(kSourceRungName);
      self->source_->plan.width = track.video ? track.video->width : 0;
      self->source_->plan.height = track.video ? track.video->height : 0;
      if (self->rungs_snapshot_.empty() || self->rungs_snapshot_.front() != self->source_)
        self->rungs_snapshot_.insert(self->rungs_snapshot_.begin(), self->source_);
    }
    self->seq_.done(slot);
  });
}

void Pipeline::on_frame(const media::MediaFrame& f) {
  double t = double(f.dts) / (f.type == media::MediaType::video ? media::kVideoTimescale : 48000);
  if (opt_.backpressure) seq_.wait_below(opt_.max_queue);
  if (f.type == media::MediaType::audio) {
    if (!(audio_passthrough_ || audio_transcode_) || f.track_id != audio_track_id_) return;
    if (have_video_track_ && !video_out_) {
      // Before the first rung frame the packager would take audio for its leader: the audio waits
      // here (bounded) for video, instead of being lost, which left the stream's first tenths of a
      // second silent and shifted a transcoded timeline by the frames missing.
      if (held_audio_.size() >= kMaxHeldAudio) {
        held_audio_.pop_front();
        ++skipped_frames_;
      }
      held_audio_.push_back(f);
      return;
    }
    release_held_audio();
    submit_audio(f);
    return;
  }
  release_held_audio();
  newest_t_ = t;
  if (seq_.timed_depth() >= opt_.max_queue) {
    // Far behind: shed source frames until the next keyframe, so the decoder restarts cleanly.
    if (!skip_to_key_) log::warn("transcode", "queue full: skipping to the next keyframe", {{"stream", opt_.stream}});
    skip_to_key_ = true;
  }
  if (skip_to_key_) {
    if (!f.keyframe || seq_.timed_depth() >= opt_.max_queue) {
      ++skipped_frames_;
      return;
    }
    skip_to_key_ = false;
  }
  auto slot = seq_.open(1, t);
  asio::post(decode_strand_, [self = shared_from_this(), slot, f] { self->decode(slot, f); });
}

void Pipeline::submit_audio(const media::MediaFrame& f) {
  if (seq_.depth() >= 4 * opt_.max_queue) {  // audio frames wait behind video ones, bounded too
    ++skipped_frames_;
    return;
  }
  auto slot = seq_.open(1, -1);
  if (audio_transcode_) {
    asio::post(audio_strand_, [self = shared_from_this(), slot, f] { self->audio_frame(slot, f); });
    return;
  }
  ++audio_frames_;
  SeqItem item;
  item.media = f;
  seq_.add(slot, std::move(item));
  seq_.done(slot);
}

void Pipeline::release_held_audio() {
  if (held_audio_.empty() || !video_out_) return;
  for (auto& a : held_audio_) submit_audio(a);
  held_audio_.clear();
}

void Pipeline::finish() {
  release_held_audio();  // video that never came out leaves its held audio out too
  auto self = shared_from_this();
  if (audio_transcode_) {
    auto audio_slot = seq_.open(1, -1);
    asio::post(audio_strand_, [self, audio_slot] { self->audio_flush(audio_slot); });
  }
  auto slot = seq_.open(1, -1);
  asio::post(decode_strand_, [self, slot] {
    self->drain_decoder(slot);
    for (auto& r : self->rungs_) {
      self->seq_.add_pending(slot, 1);
      asio::post(r->strand, [self, r, slot] { self->withdraw(r, slot); });
    }
    // The source rung's last frames, after the rungs' last ones (withdraw: UINT32_MAX - 1).
    if (self->source_ && !*self->stopping_) self->release_source(slot, UINT32_MAX, INT64_MAX);
    self->seq_.done(slot);
  });
}

void Pipeline::audio_source(std::uint64_t slot, media::TrackConfig track) {
  CpuScope cpu(cpu_ns_);
  std::string error;
  if (!audio_ && !audio_failed_) {
    audio_ = AudioTranscoder::make(track.track_id, 128000, &error);
    if (!audio_) {
      audio_failed_ = true;
      log::error("transcode", "audio encoder failed: no audio", {{"stream", opt_.stream}, {"error", error}});
    } else {
      SeqItem item;
      item.kind = SeqItem::track;
      item.track_config = audio_->track();
      seq_.add(slot, std::move(item));
    }
  }
  if (audio_ && !audio_->set_source(track, &error))
    log::warn("transcode", "source audio not decodable: not carried", {{"stream", opt_.stream}, {"error", error}});
  else if (audio_)
    log::info("transcode", "audio re-encoded to AAC-LC 48 kHz stereo",
              {{"stream", opt_.stream},
               {"codec", media::codec_name(track.codec)},
               {"sample_rate", track.audio ? track.audio->sample_rate : track.timescale}});
  seq_.done(slot);
}

void Pipeline::audio_frame(std::uint64_t slot, media::MediaFrame frame) {
  CpuScope cpu(cpu_ns_);
  if (audio_ && !*stopping_) {
    std::vector<media::MediaFrame> out;
    audio_->push(frame, out);
    audio_frames_.fetch_add(std::int64_t(out.size()), std::memory_order_relaxed);
    for (auto& m : out) {
      SeqItem item;
      item.media = std::move(m);
      seq_.add(slot, std::move(item));
    }
  }
  seq_.done(slot);
}

void Pipeline::audio_flush(std::uint64_t slot) {
  if (audio_ && !*stopping_) {
    std::vector<media::MediaFrame> out;
    audio_->flush(out);
    for (auto& m : out) {
      SeqItem item;
      item.media = std::move(m);
      seq_.add(slot, std::move(item));
    }
  }
  audio_.reset();
  seq_.done(slot);
}

void Pipeline::set_decoder(media::TrackConfig track) {
  decoder_.reset();
  AVCodecID id = codec_id(track.codec);
  const AVCodec* codec = id == AV_CODEC_ID_NONE ? nullptr : avcodec_find_decoder(id);
  if (!codec) {
    log::warn("transcode", "no decoder for the source's video",
              {{"stream", opt_.stream}, {"codec", media::codec_name(track.codec)}});
    return;
  }
  CodecContextPtr ctx(avcodec_alloc_context3(codec));
  auto rec = track.record.view();
  if (!rec.empty()) {
    ctx->extradata = static_cast<std::uint8_t*>(av_mallocz(rec.size() + AV_INPUT_BUFFER_PADDING_SIZE));
    std::memcpy(ctx->extradata, rec.data(), rec.size());
    ctx->extradata_size = static_cast<int>(rec.size());
  }
  ctx->pkt_timebase = AVRational{1, static_cast<int>(media::kVideoTimescale)};
  ctx->thread_count = 1;  // parallelism comes from the rungs; a decoder thread pool per stream costs more
  if (int rc = avcodec_open2(ctx.get(), codec, nullptr); rc < 0) {
    log::warn("transcode", "decoder does not open", {{"stream", opt_.stream}, {"error", av_error(rc)}});
    return;
  }
  decoder_ = std::move(ctx);
  log::info("transcode", "source video", {{"stream", opt_.stream}, {"codec", media::codec_name(track.codec)}});
}

void Pipeline::decode(std::uint64_t slot, media::MediaFrame f) {
  CpuScope cpu(cpu_ns_);
  BusyScope busy(opt_.load.get(), nullptr);
  if (source_ && !*stopping_) {
    // The frame itself (its Bytes shared, not copied) waits for its picture.
    SeqItem item;
    item.area = kSourceArea;
    item.media = f;
    item.media.track_id = kSourceTrackId;
    held_.push_back(std::move(item));
    ++held_frames_;
    if (f.keyframe) {
      source_keys_.push_back(f.pts);
      if (source_keys_.size() > kMaxHeld) source_keys_.pop_front();
    }
  }
  if (f.epoch > epoch_in_) {
    // A source discontinuity (a timestamp jump, ingest.timestamp_jump): its first picture is
    // forced to a keyframe in every rung, which carry the new epoch from there (picture()).
    epoch_in_ = f.epoch;
    epoch_pts_ = f.pts;
  }
  if (decoder_ && !*stopping_) {
    av_packet_unref(packet_.get());
    if (av_new_packet(packet_.get(), static_cast<int>(f.data.size())) == 0) {
      std::memcpy(packet_->data, f.data.data(), f.data.size());
      packet_->pts = f.pts;
      packet_->dts = f.dts;
      if (f.keyframe) packet_->flags |= AV_PKT_FLAG_KEY;
      int rc = avcodec_send_packet(decoder_.get(), packet_.get());
      if (rc < 0 && rc != AVERROR(EAGAIN)) {
        // A corrupt frame: the decoder conceals what it can; counted, not fatal.
        ++skipped_frames_;
      }
      std::uint32_t index = 0;
      while (avcodec_receive_frame(decoder_.get(), decoded_.get()) == 0) {
        picture(slot, index++, decoded_.get());
        av_frame_unref(decoded_.get());
      }
    }
  }
  // No rung to wait for (no decoder, a source smaller than every rung), or more held than a
  // decoder and an encoder can delay (undecodable frames, times that never come out): the source
  // rung goes on without waiting.
  if (source_) {
    bool rungs = plan_w_ == 0 ||  // no picture yet: the ladder is not planned
                 std::any_of(rungs_.begin(), rungs_.end(), [](auto& r) { return r->active && r->in_plan; });
    if (!decoder_ || !rungs || held_frames_ > kMaxHeld) release_source(slot, UINT32_MAX - 2, INT64_MAX);
  }
  seq_.done(slot);
}

void Pipeline::release_source(std::uint64_t slot, std::uint32_t picture, std::int64_t pts) {
  while (!held_.empty() && (held_.front().kind == SeqItem::track || held_.front().media.pts <= pts)) {
    SeqItem item = std::move(held_.front());
    held_.pop_front();
    item.picture = picture;
    if (item.kind == SeqItem::frame) {
      --held_frames_;
      // Decode order: dts rises, unlike pts.
      source_->frames.fetch_add(1, std::memory_order_relaxed);
      source_->bytes.fetch_add(std::int64_t(item.media.data.size()), std::memory_order_relaxed);
      source_->last_pts.store(item.media.dts, std::memory_order_relaxed);
      std::int64_t unset = INT64_MIN;
      source_->first_pts.compare_exchange_strong(unset, item.media.dts, std::memory_order_relaxed);
    }
    seq_.add(slot, std::move(item));
  }
}

void Pipeline::drain_decoder(std::uint64_t slot) {
  if (decoder_) {
    avcodec_send_packet(decoder_.get(), nullptr);
    std::uint32_t index = 0;
    while (avcodec_receive_frame(decoder_.get(), decoded_.get()) == 0) {
      picture(slot, index++, decoded_.get());
      av_frame_unref(decoded_.get());
    }
    avcodec_flush_buffers(decoder_.get());
  }
}

void Pipeline::replan(int width, int height) {
  double fps = min_step_ > 0 ? double(media::kVideoTimescale) / double(min_step_) : 0;
  auto plan = plan_ladder(opt_.profile, static_cast<std::uint32_t>(width), static_cast<std::uint32_t>(height), fps);
  std::vector<std::shared_ptr<RungState>> next;
  for (auto& p : plan) {
    std::shared_ptr<RungState> keep;
    for (auto& r : rungs_)
      if (r->plan.index == p.index && r->in_plan) keep = r;  // a rung dropped for lag stays, dropped
    if (!keep) {
      bool was_dropped = false;
      for (auto& r : rungs_)
        if (r->plan.index == p.index && !r->active) was_dropped = true;
      if (was_dropped) continue;  // a dropped rung stays dropped for this publish
      keep = std::make_shared<RungState>(asio::make_strand(pool_.get_executor()));
      keep->track_id = kRungTrackBase + static_cast<std::uint32_t>(p.index);
    }
    keep->plan = p;
    next.push_back(keep);
  }
  // Rungs that no longer fit the source are withdrawn.
  for (auto& r : rungs_) {
    bool kept = std::any_of(next.begin(), next.end(), [&](auto& n) { return n == r; });
    if (!kept && r->in_plan) {
      r->in_plan = false;
      if (r->active) {
        r->active = false;
        auto self = shared_from_this();
        auto slot = seq_.open(1, -1);
        asio::post(r->strand, [self, r, slot] { self->withdraw(r, slot); });
      }
      next.push_back(r);  // kept for its statistics
    }
  }
  rungs_ = std::move(next);
  {
    std::lock_guard lk(stats_mu_);
    rungs_snapshot_ = rungs_;
    if (source_) rungs_snapshot_.insert(rungs_snapshot_.begin(), source_);
  }
  plan_w_ = width;
  plan_h_ = height;
  std::string names;
  for (auto& r : rungs_)
    if (r->in_plan)
      names += fmt::format("{}{}={}x{}", names.empty() ? "" : ",", r->plan.rung.name, r->plan.width, r->plan.height);
  log::info("transcode", "ladder",
            {{"stream", opt_.stream}, {"source", fmt::format("{}x{}", width, height)}, {"rungs", names}});
}

std::size_t scaling_source(const std::vector<ScalingCandidate>& made, int width, int height, bool cascade) {
  std::size_t best = 0;
  if (!cascade || made.empty()) return best;
  for (std::size_t i = 1; i < made.size(); ++i) {
    const auto& m = made[i];
    if (m.width >= width && m.height >= height && m.yuv420p &&
        std::int64_t(m.width) * m.height < std::int64_t(made[best].width) * made[best].height)
      best = i;
  }
  return best;
}

void Pipeline::picture(std::uint64_t slot, std::uint32_t index, AVFrame* pic) {
  if (*stopping_) return;
  std::int64_t pts = pic->best_effort_timestamp != AV_NOPTS_VALUE ? pic->best_effort_timestamp : pic->pts;
  if (pts == AV_NOPTS_VALUE || pts <= last_pts_) {
    ++skipped_frames_;  // reordering gone wrong or a repeated time: never emit time going backwards
    return;
  }
  if (last_pts_ != INT64_MIN) {
    std::int64_t step = pts - last_pts_;
    if (step > 0 && step < media::kVideoTimescale && (min_step_ == 0 || step < min_step_)) min_step_ = step;
  }
  last_pts_ = pts;
  if (pic->width != plan_w_ || pic->height != plan_h_ || (rungs_.empty() && !opt_.profile.source))
    replan(pic->width, pic->height);
  maybe_drop_rung();

  bool key = false;
  bool discontinuity = epoch_in_ > epoch_out_ && pts >= epoch_pts_;
  if (opt_.profile.source) {
    // The grid follows the source: a source keyframe at least a segment target (less half a frame,
    // for millisecond timestamps) after the last forced picture is forced in every rung, so the
    // packager cuts every rung, the source included, at the same pictures. Sources with keyframes
    // farther apart give longer segments.
    bool source_key = false;
    while (!source_keys_.empty() && source_keys_.front() <= pts) {
      source_key = source_key || source_keys_.front() == pts;
      source_keys_.pop_front();
    }
    key = source_key &&
          (last_forced_ == INT64_MIN || pts - last_forced_ + min_step_ / 2 >= opt_.keyframe_ticks || discontinuity);
    if (key) last_forced_ = pts;
    // The rungs' discontinuity waits for the source's keyframe, where the source rung's can begin.
    if (key && discontinuity) epoch_out_ = epoch_in_;
  } else {
    // Keyframes on the segment grid of source media time: every rung forces the same pictures.
    // The grid starts at the stream's first picture, so the first segment is a whole one.
    // A source discontinuity starts the grid over at its first picture, so the segment after it
    // is a whole one too.
    if (grid_origin_ == INT64_MIN || discontinuity) grid_origin_ = pts;
    std::int64_t since = pts - grid_origin_;
    std::int64_t grid =
        since >= 0 ? since / opt_.keyframe_ticks : -((-since + opt_.keyframe_ticks - 1) / opt_.keyframe_ticks);
    key = grid != last_grid_ || discontinuity;
    last_grid_ = grid;
    if (discontinuity) epoch_out_ = epoch_in_;
  }

  // x264's rate control spends the bit rate per frame at the nominal rate: the source's, as
  // measured, else as its SPS declares it, else 30.
  double source_fps = 30;
  if (min_step_ > 0)
    source_fps = double(media::kVideoTimescale) / double(min_step_);
  else if (decoder_ && decoder_->framerate.num > 0 && decoder_->framerate.den > 0)
    source_fps = av_q2d(decoder_->framerate);
  source_fps = std::clamp(source_fps, 1.0, 240.0);
  source_fps_ = source_fps;
  maybe_restore_rung(key);
  struct Made {
    int w, h;
    AVFrame* frame;
  };
  std::vector<Made> made;  // pictures available as scaling sources, the source first
  std::vector<ScalingCandidate> candidates;
  made.push_back({pic->width, pic->height, pic});
  candidates.push_back({pic->width, pic->height, pic->format == AV_PIX_FMT_YUV420P});
  std::vector<FramePtr> keep_alive;
  bool yuv420 = pic->format == AV_PIX_FMT_YUV420P;
  for (auto& r : rungs_) {
    if (!r->active || !r->in_plan) continue;
    const auto& p = r->plan;
    // Frame-rate cap: keep a picture once a rung's frame interval has passed (a little early is
    // fine, for millisecond jitter); pictures on the grid are always kept so keyframes align.
    std::int64_t interval = static_cast<std::int64_t>(media::kVideoTimescale / std::max(1.0, p.rung.max_fps));
    bool first = r->next_keep == INT64_MIN;
    if (!key && !first && pts < r->next_keep - interval / 4) continue;
    // Keep the phase across millisecond jitter; restart it on the grid and after gaps.
    r->next_keep = key || first || pts - r->next_keep > interval ? pts + interval : r->next_keep + interval;
    FramePtr out;
    if (int(p.width) == pic->width && int(p.height) == pic->height && yuv420) {
      out = make_frame();
      av_frame_ref(out.get(), pic);
    } else {
      // Scale from the smallest picture made so far that is at least as large (cascade), or from
      // the source.
      const Made* src = &made[scaling_source(candidates, int(p.width), int(p.height), opt_.cascade)];
      if (!r->scaler) r->scaler = make_scaler(opt_.scaler);
      // A picture from the rung's pool that no encoder task holds any more (x264 copies its
      // input), else a new one: no allocation per frame in the steady state.
      for (auto& f : r->pool)
        if (f.use_count() == 1 && f->width == int(p.width) && f->height == int(p.height)) {
          std::atomic_thread_fence(std::memory_order_acquire);  // the encoder task is done with it
          out = f;
          break;
        }
      if (!out) {
        out = alloc_picture(int(p.width), int(p.height));  // aligned as zimg needs
        if (!out) continue;
        if (r->pool.size() < 8) r->pool.push_back(out);
      }
      if (!r->scaler->scale(*src->frame, *out)) continue;
      made.push_back({out->width, out->height, out.get()});
      candidates.push_back({out->width, out->height, out->format == AV_PIX_FMT_YUV420P});
    }
    keep_alive.push_back(out);
    double fps = std::min(p.rung.max_fps, source_fps);
    seq_.add_pending(slot, 1);
    asio::post(r->strand, [self = shared_from_this(), r, slot, index, out, pts, key, w = p.width, h = p.height, fps,
                           epoch = epoch_out_] { self->encode(r, slot, index, out, pts, key, w, h, fps, epoch); });
  }
  // The source's frames presented up to this picture go out in its slot, after every rung's frame
  // of it (the packager's leader cuts first).
  if (source_) release_source(slot, index, pts);
}

void Pipeline::maybe_drop_rung() {
  if (opt_.backpressure) return;
  double front = seq_.front_time(), newest = newest_t_;
  if (front < 0 || newest - front <= opt_.max_lag) return;
  auto now = std::chrono::steady_clock::now();
  if (now - last_drop_ < std::chrono::duration<double>(opt_.max_lag)) return;  // let the last drop take effect
  int active = 0;
  for (auto& r : rungs_) active += r->active && r->in_plan ? 1 : 0;
  if (active <= 1) return;  // the last rung always stays
  for (auto& r : rungs_)
    if (r->active && r->in_plan) {
      last_drop_ = now;
      drop_rung(*r, "behind real time");
      restore_.on_drop(r->plan.index, now_seconds());
      load_at_ = -1;  // the next load sample starts after the drop
      log::warn("transcode", "behind real time: top rung dropped",
                {{"stream", opt_.stream}, {"rung", r->plan.rung.name}, {"lag_s", newest - front}});
      auto self = shared_from_this();
      auto slot = seq_.open(1, -1);
      asio::post(r->strand, [self, r, slot] { self->withdraw(r, slot); });
      return;
    }
}

void Pipeline::drop_rung(RungState& r, const char*) {
  r.active = false;
  ++dropped_rungs_;
}

double Pipeline::now_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - created_).count();
}

double Pipeline::rung_load(const RungState& r) const {
  // Wall time per picture while it ran, times its pictures per second, over the pool's threads.
  // A rung never measured (dropped before its 30th picture) counts as the largest measured one
  // scaled by area, or as a whole thread.
  auto per_second = [&](const RungState& x) -> double {
    std::int64_t n = x.encoded;
    if (n < 30) return -1;
    return double(x.busy_ns) / 1e9 / double(n) * std::min(x.plan.rung.max_fps, source_fps_);
  };
  double threads = opt_.load ? double(std::max<std::size_t>(1, opt_.load->threads)) : 1.0;
  double own = per_second(r);
  if (own >= 0) return own / threads;
  for (auto& o : rungs_) {
    double other = per_second(*o);
    if (&*o == &r || other < 0 || o->plan.width * o->plan.height == 0) continue;
    return other * double(r.plan.width * r.plan.height) / double(o->plan.width * o->plan.height) / threads;
  }
  return 1.0 / threads;
}

void Pipeline::maybe_restore_rung(bool key) {
  if (opt_.backpressure) return;
  std::shared_ptr<RungState> next;  // the smallest rung dropped for lag
  for (auto it = rungs_.rbegin(); it != rungs_.rend(); ++it)
    if ((*it)->in_plan && !(*it)->active && !(*it)->failed) {
      next = *it;
      break;
    }
  if (!next) return;
  double now = now_seconds();
  double front = seq_.front_time(), newest = newest_t_;
  restore_.observe_lag(now, front < 0 ? 0 : newest - front);
  // The pool's busy fraction, sampled over a second or more, with the rung's own cost added: there
  // must be room for it, or it would only be dropped again.
  if (opt_.load && (load_at_ < 0 || now - load_at_ >= 1.0)) {
    std::int64_t busy = opt_.load->busy_ns.load(std::memory_order_relaxed);
    if (load_at_ >= 0) {
      last_load_ =
          double(busy - load_busy_) / 1e9 / ((now - load_at_) * double(std::max<std::size_t>(1, opt_.load->threads)));
      restore_.observe_load(now, last_load_ + rung_load(*next));
    }
    load_at_ = now;
    load_busy_ = busy;
  }
  // At a picture every rung forces to a keyframe: the rung's new encoder starts there with an IDR
  // and a new init, on the same grid as the others, so its segments line up with theirs.
  if (!key || !next->parked || !restore_.ready(next->plan.index, now)) return;
  double hold = restore_.hold(next->plan.index);
  next->parked = false;
  next->active = true;
  next->next_keep = INT64_MIN;
  ++restored_rungs_;
  restore_.on_restore(next->plan.index, now);
  log::info("transcode", "ahead of real time again: rung restored",
            {{"stream", opt_.stream},
             {"rung", next->plan.rung.name},
             {"held_s", hold},
             {"load", last_load_},
             {"rung_load", rung_load(*next)}});
}

void Pipeline::encode(std::shared_ptr<RungState> r, std::uint64_t slot, std::uint32_t index, FramePtr pic,
                      std::int64_t pts, bool key, std::uint32_t w, std::uint32_t h, double fps, std::uint32_t epoch) {
  CpuScope cpu(cpu_ns_);
  BusyScope busy(opt_.load.get(), &r->busy_ns);
  if (!r->active || *stopping_) {
    release_in_encoder(*r);
    seq_.done(slot);
    return;
  }
  ++r->encoded;
  r->withdrawn = false;  // restored after a drop: a new encoder, announced as a new track version
  std::vector<EncodedFrame> out;
  if (r->encoder && (r->enc_w != w || r->enc_h != h)) {
    (void)r->encoder->encode(nullptr, 0, false, out);  // the old size's last frames
    place(*r, out, slot, index);
    r->encoder.reset();
  }
  if (!r->encoder) {
    EncoderParams params;
    params.encoder = opt_.encoder;
    params.width = w;
    params.height = h;
    params.fps = fps;
    params.rung = r->plan.rung;
    std::string error;
    r->encoder = make_video_encoder(params, &error);
    if (!r->encoder) {
      log::error("transcode", "encoder failed: rung dropped",
                 {{"stream", opt_.stream}, {"rung", r->plan.rung.name}, {"error", error}});
      r->failed = true;
      drop_rung(*r, "encoder failed");
      withdraw(r, slot);
      return;
    }
    r->enc_w = w;
    r->enc_h = h;
    SeqItem item;
    item.picture = index;
    item.area = std::uint64_t(w) * h;
    item.kind = SeqItem::track;
    item.track_config = r->encoder->track();
    item.track_config.track_id = r->track_id;
    item.track_config.version = ++r->version;
    item.track_config.name = r->plan.rung.name;
    seq_.add(slot, std::move(item));
  }
  // The picture's slot stays open until the encoder gives its frame back (x264 holds one picture
  // to learn its duration), so every rung's frame of a picture goes out in that picture's slot.
  r->in_encoder.push_back({pts, slot, index, epoch});
  // A new encoder starts with an IDR anyway; force it so the flag is explicit.
  if (auto rc = r->encoder->encode(pic.get(), pts, key, out); !rc) {
    log::warn("transcode", "encode failed", {{"stream", opt_.stream}, {"rung", r->plan.rung.name}});
  }
  place(*r, out, slot, index);
}

void Pipeline::place(RungState& r, std::vector<EncodedFrame>& out, std::uint64_t slot, std::uint32_t index) {
  std::uint64_t area = std::uint64_t(r.enc_w) * r.enc_h;
  for (auto& e : out) {
    // Pictures the encoder skipped (none with x264) close their slots; a frame of no known
    // picture goes out in the current one.
    while (!r.in_encoder.empty() && r.in_encoder.front().pts < e.pts) {
      seq_.done(r.in_encoder.front().slot);
      r.in_encoder.pop_front();
    }
    std::uint64_t at = slot;
    std::uint32_t picture = index;
    bool own = !r.in_encoder.empty() && r.in_encoder.front().pts == e.pts;
    if (own) {
      at = r.in_encoder.front().slot;
      picture = r.in_encoder.front().index;
      r.epoch = r.in_encoder.front().epoch;
    }
    r.frames.fetch_add(1, std::memory_order_relaxed);
    r.bytes.fetch_add(static_cast<std::int64_t>(e.data.size()), std::memory_order_relaxed);
    r.last_pts.store(e.pts, std::memory_order_relaxed);
    std::int64_t unset = INT64_MIN;
    r.first_pts.compare_exchange_strong(unset, e.pts, std::memory_order_relaxed);
    SeqItem item;
    item.picture = picture;
    item.area = area;
    item.media = {r.track_id, media::MediaType::video, media::Codec::h264, e.dts, e.pts, e.keyframe, r.version, e.data,
                  r.epoch};
    seq_.add(at, std::move(item));
    if (own) {
      seq_.done(at);
      r.in_encoder.pop_front();
    }
  }
  out.clear();
}

void Pipeline::release_in_encoder(RungState& r) {
  for (auto& p : r.in_encoder) seq_.done(p.slot);
  r.in_encoder.clear();
}

void Pipeline::withdraw(std::shared_ptr<RungState> r, std::uint64_t slot) {
  if (!r->withdrawn) {
    r->withdrawn = true;
    if (r->encoder) {
      std::vector<EncodedFrame> out;
      if (r->active && !*stopping_) (void)r->encoder->encode(nullptr, 0, false, out);
      place(*r, out, slot, UINT32_MAX - 1);
      r->encoder.reset();
      SeqItem item;
      item.picture = UINT32_MAX;
      item.kind = SeqItem::withdraw;
      item.track_id = r->track_id;
      seq_.add(slot, std::move(item));
    }
  }
  release_in_encoder(*r);
  r->parked = true;
  seq_.done(slot);
}

void Pipeline::emit(SeqItem& item) {
  switch (item.kind) {
    case SeqItem::track:
      if (item.track_config.type == media::MediaType::video) video_out_ = true;
      sink_->on_track(item.track_config);
      break;
    case SeqItem::frame: {
      sink_->on_frame(item.media);
      if (item.media.type != media::MediaType::video) break;
      double t = double(item.media.dts) / media::kVideoTimescale;
      std::lock_guard lk(speed_mu_);
      if (t > emitted_t_) emitted_t_ = t;
      auto now = std::chrono::steady_clock::now();
      if (speed_media_ < 0) {
        speed_media_ = t;
        speed_since_ = now;
      }
      double wall = std::chrono::duration<double>(now - speed_since_).count();
      if (wall >= 3.0) {
        speed_ = (emitted_t_ - speed_media_) / wall;
        speed_media_ = emitted_t_;
        speed_since_ = now;
      }
      break;
    }
    case SeqItem::withdraw:
      sink_->on_withdraw(item.track_id);
      break;
  }
}

StreamStats Pipeline::stats() const {
  StreamStats s;
  s.stream = opt_.stream;
  s.profile = opt_.profile.name;
  {
    std::lock_guard lk(speed_mu_);
    s.speed = speed_;
  }
  s.queue_frames = static_cast<std::int64_t>(seq_.timed_depth());
  s.dropped_rungs = dropped_rungs_;
  s.restored_rungs = restored_rungs_;
  s.cpu_seconds = double(cpu_ns_.load()) / 1e9;
  s.skipped_frames = skipped_frames_;
  s.audio_frames = audio_frames_;
  s.audio_transcoded = audio_transcode_;
  std::lock_guard lk(stats_mu_);
  for (auto& r : rungs_snapshot_) {
    StreamStats::RungStats rs;
    rs.name = r->plan.rung.name;
    rs.active = r->active && r->in_plan;
    rs.width = r->plan.width;
    rs.height = r->plan.height;
    rs.declared_bps = r->plan.rung.maxrate;
    rs.frames = r->frames;
    std::int64_t bytes = r->bytes;
    // Bits per second of media encoded since the last figure (at least a second of media), so
    // a transcoder running behind real time still reports the rung's true bit rate.
    std::int64_t pts = r->last_pts;
    if (r->rate_pts == INT64_MIN) r->rate_pts = r->first_pts;  // the first figure: since the start
    if (pts < r->rate_pts) {
      r->rate_pts = pts;
      r->rate_bytes = bytes;
    } else if (pts - r->rate_pts >= std::int64_t(media::kVideoTimescale)) {
      r->rate_bps = double(bytes - r->rate_bytes) * 8 * media::kVideoTimescale / double(pts - r->rate_pts);
      r->rate_bytes = bytes;
      r->rate_pts = pts;
    }
    rs.bitrate_bps = rs.active ? r->rate_bps : 0;
    s.rungs.push_back(std::move(rs));
  }
  return s;
}

}  // namespace sf::transcode
