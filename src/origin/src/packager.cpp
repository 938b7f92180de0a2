#include "packager.h"

#include <chrono>
#include <cmath>
#include <limits>

#include "render.h"
#include "sf/cmaf/fmp4.h"
#include "sf/core/log.h"

namespace sf::origin {
namespace {

std::int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Complete segments kept beyond the listed window, so URIs stay downloadable after their tags
// leave the playlist (LL-HLS 6.2.2: parts at least 3 target durations longer).
constexpr std::size_t kExtraSegments = 3;

}  // namespace

Packager::Packager(std::string stream, const Config& config)
    : stream_(std::move(stream)),
      config_(config),
      target_duration_(static_cast<int>(std::ceil(config.segment_target.count() / 1000.0))) {}

void ArrivalClock::mark(double media_seconds, std::int64_t wall_ms) {
  std::lock_guard lock(mu_);
  if (!best_ || double(wall_ms) - media_seconds * 1000 < double(best_->wall_ms) - best_->media_seconds * 1000)
    best_ = Mark{media_seconds, wall_ms};
}

std::optional<ArrivalClock::Mark> ArrivalClock::best() const {
  std::lock_guard lock(mu_);
  return best_;
}

void Packager::restart(std::shared_ptr<const ArrivalClock> arrival) {
  arrival_ = std::move(arrival);
  own_best_.reset();
  settled_ = false;
  period_set_here_ = false;
  availability_set_here_ = false;
  for (auto& r : renditions_) {
    r.pending.clear();
    if (r.open) close_segment(r);
    r.discontinuity = true;
    r.last_dts = -1;
  }
  have_leader_segment_ = false;
  wall_base_ms_ = -1;
  live_ = true;
  epoch_ = 0;
}

void Packager::reconfigure(const Config& config) {
  bool same = config.segment_target == config_.segment_target && config.part_target == config_.part_target &&
              config.low_latency == config_.low_latency;
  config_ = config;
  if (same) return;
  target_duration_ = static_cast<int>(std::ceil(config.segment_target.count() / 1000.0));
  for (auto& r : renditions_) r.done.clear();
  log::info("origin", "stream settings changed: a new window starts",
            {{"stream", stream_},
             {"low_latency", config.low_latency},
             {"part_target_ms", config.part_target.count()},
             {"segment_target_ms", config.segment_target.count()}});
}

Packager::Rendition* Packager::rendition_for(std::uint32_t track_id) {
  for (auto& r : renditions_)
    if (r.track.track_id == track_id) return &r;
  return nullptr;
}

void Packager::on_track(const media::TrackConfig& track) {
  auto init = cmaf::write_init_segment(track);
  if (!init) {
    log::warn("origin", "track not packaged",
              {{"stream", stream_}, {"codec", media::codec_name(track.codec)}, {"error", init.error().message()}});
    return;
  }
  Rendition* r = rendition_for(track.track_id);
  if (!r) {
    Rendition fresh;
    fresh.name = !track.name.empty() ? track.name : track.type == media::MediaType::video ? "video" : "audio";
    for (auto& other : renditions_)
      if (other.name == fresh.name) fresh.name += std::to_string(track.track_id);
    fresh.leader = track.type == media::MediaType::video &&
                   std::none_of(renditions_.begin(), renditions_.end(), [](auto& o) { return o.leader; });
    renditions_.push_back(std::move(fresh));
    r = &renditions_.back();
  } else if (r->track.record.view().size() == track.record.view().size() &&
             std::equal(r->track.record.view().begin(), r->track.record.view().end(), track.record.view().begin())) {
    return;  // the same configuration again
  } else {
    // A new configuration starts a new segment with a new init; every rendition takes the
    // discontinuity at the same segment, so their discontinuity sequences and DASH periods agree.
    for (auto& o : renditions_) o.discontinuity = true;
  }
  // Init versions are numbered per rendition from 1, whatever the source numbered them.
  auto inits = std::make_shared<std::map<std::uint32_t, Bytes>>(*r->inits);
  std::uint32_t v = inits->empty() ? 1 : inits->rbegin()->first + 1;
  (*inits)[v] = *init;
  r->inits = std::move(inits);
  r->track = track;
  r->track.version = v;
  auto configs = std::make_shared<std::map<std::uint32_t, media::TrackConfig>>(*r->configs);
  (*configs)[v] = r->track;
  r->configs = std::move(configs);
}

void Packager::begin_discontinuity(std::uint32_t epoch) {
  epoch_ = epoch;
  for (auto& r : renditions_) {
    r.discontinuity = true;
    if (r.inits->empty()) continue;
    // "A source that ... jumps its timestamps gets a new init segment" (issue 3), even when its
    // configuration is the same: a new version of the same bytes, named by the new segments.
    auto inits = std::make_shared<std::map<std::uint32_t, Bytes>>(*r.inits);
    auto [last, bytes] = *inits->rbegin();
    (*inits)[last + 1] = bytes;
    r.inits = std::move(inits);
    r.track.version = last + 1;
  }
  log::info("origin", "source discontinuity: the next segment starts a new one",
            {{"stream", stream_}, {"epoch", epoch}, {"discontinuity_sequence", discontinuities_ + 1}});
}

std::shared_ptr<const StreamView> Packager::on_frame(const media::MediaFrame& f) {
  if (f.epoch > epoch_) begin_discontinuity(f.epoch);
  Rendition* rp = rendition_for(f.track_id);
  if (!rp || rp->inits->empty()) return nullptr;
  Rendition& r = *rp;
  if (!r.leader && std::none_of(renditions_.begin(), renditions_.end(), [](auto& o) { return o.leader; }))
    r.leader = true;  // audio-only: the audio track leads

  double t = seconds(r, f.dts);
  if (!settled_) {
    // Until the first view, the earliest implied start of the frames arriving here (used when
    // the input side marked none).
    std::int64_t now = wall_ms();
    if (!own_best_ || double(now) - t * 1000 < double(own_best_->wall_ms) - own_best_->media_seconds * 1000)
      own_best_ = ArrivalClock::Mark{t, now};
  }
  if (wall_base_ms_ < 0) anchor(t);
  std::int64_t step = r.frame_step > 0 ? r.frame_step : 0;
  bool new_segment = false;
  if (r.leader) {
    bool independent = f.keyframe || f.type == media::MediaType::audio;
    if (!r.open)
      new_segment = independent;
    else
      new_segment = independent && (r.discontinuity || seconds(r, f.dts + step - r.open->start_dts) >
                                                           config_.segment_target.count() / 1000.0 + 1e-6);
    if (r.open && f.type == media::MediaType::audio && !r.discontinuity)
      new_segment = seconds(r, f.dts + step - r.open->start_dts) > config_.segment_target.count() / 1000.0 + 1e-6;
  } else {
    // Follow the leader: start segment N at the first frame at or after its start time (less
    // half a frame, so rounding does not push the boundary one frame late).
    // A video follower starts it on a keyframe presented at or after the leader's first frame: a
    // source passed through beside transcoded rungs has B-frames, so its keyframe's dts comes
    // earlier than its pts (the transcoder hands it over after the rungs' frame of that picture).
    double tolerance = seconds(r, step) / 2;
    bool leader_ahead = have_leader_segment_ && (!r.open || leader_msn_ > r.open->msn);
    if (f.type == media::MediaType::video)
      new_segment = leader_ahead && f.keyframe && seconds(r, f.pts) + tolerance >= leader_segment_pts_;
    else
      new_segment = leader_ahead && t + tolerance >= leader_segment_start_;
  }
  if (!r.open && !new_segment) return nullptr;  // before the first segment boundary

  std::int64_t part_ticks = static_cast<std::int64_t>(
      (r.leader ? config_.part_target.count() / 1000.0 : advertised_part_target()) * r.track.timescale);
  bool too_long = !r.pending.empty() && f.dts + step - r.part_start > part_ticks;
  bool new_part = new_segment || too_long;
  if (!r.leader && !new_part && !r.pending.empty()) {
    // Follow the leader's part boundaries (within half a frame).
    double tolerance = seconds(r, step) / 2;
    new_part = leader_part_ > r.followed_part && t + tolerance >= leader_part_start_;
  }
  if (new_segment && !r.leader) {
    const Segment* last = r.open ? r.open.get() : !r.done.empty() ? r.done.back().get() : nullptr;
    if (last && leader_msn_ > last->msn + 1) {
      // The rendition stopped (a transcoder dropped its rung) and comes back segments later. A
      // playlist's segments number consecutively (and the MPD's $Number$ counts its timeline), so
      // its window starts over here; the segments it missed were never made. Its unfinished last
      // part would span the gap: dropped with it.
      log::info("origin", "rendition resumes after a gap: its window starts over",
                {{"stream", stream_}, {"rendition", r.name}, {"from_msn", last->msn}, {"msn", leader_msn_}});
      r.pending.clear();
      r.open.reset();
      r.done.clear();
    }
  }
  bool published = false;
  if (new_part && !r.pending.empty()) published = close_part(r, f.dts);
  if (new_segment) {
    if (r.open) close_segment(r);
    std::uint64_t msn = r.leader ? next_msn_++ : leader_msn_;
    open_segment(r, msn, f);
    if (r.leader) {
      leader_msn_ = msn;
      leader_segment_start_ = t;
      leader_segment_pts_ = seconds(r, f.pts);
      have_leader_segment_ = true;
    }
  }
  if (r.pending.empty()) {
    r.part_start = f.dts;
    if (r.leader) {
      leader_part_start_ = t;
      ++leader_part_;
    } else {
      r.followed_part = leader_part_;
    }
  }
  r.pending.push_back(f);
  if (r.last_dts >= 0 && f.dts > r.last_dts) {
    // RTMP times are whole milliseconds, so a 30 fps step alternates 33 and 34 ms; the smaller of
    // the last two steps does not overshoot, and a part is not cut one frame early.
    std::int64_t step_now = f.dts - r.last_dts;
    r.frame_step = r.last_step > 0 ? std::min(step_now, r.last_step) : step_now;
    r.last_step = step_now;
  }
  r.last_dts = f.dts;
  if (f.type == media::MediaType::video) ++r.frames_in_window;
  return published ? publish() : nullptr;
}

std::shared_ptr<const StreamView> Packager::on_stop() {
  for (auto& r : renditions_) {
    if (!r.pending.empty()) close_part(r, r.last_dts + std::max<std::int64_t>(r.frame_step, 1));
    if (r.open) close_segment(r);
  }
  live_ = false;
  return publish();
}

ArrivalClock::Mark Packager::best_arrival() const {
  if (arrival_)
    if (auto mark = arrival_->best()) return *mark;
  if (own_best_) return *own_best_;
  return {0, wall_ms()};
}

void Packager::anchor(double t) {
  auto best = best_arrival();
  // Program date time never goes back: a publisher that ran ahead of real time and reconnects
  // starts its new timeline where the last segment ended.
  std::int64_t pdt = best.wall_ms + static_cast<std::int64_t>(std::llround((t - best.media_seconds) * 1000));
  wall_base_ms_ = best.wall_ms + std::max<std::int64_t>(0, pdt_end_ms_ - pdt);
  media_base_ = best.media_seconds;
}

void Packager::settle_anchor() {
  settled_ = true;
  if (wall_base_ms_ < 0) return;
  auto best = best_arrival();
  std::int64_t base = best.wall_ms + static_cast<std::int64_t>(std::llround((media_base_ - best.media_seconds) * 1000));
  std::int64_t delta = std::min<std::int64_t>(0, base - wall_base_ms_);
  std::int64_t first = std::numeric_limits<std::int64_t>::max();
  for (auto& r : renditions_)
    if (r.open) first = std::min(first, r.open->pdt_ms);
  if (first != std::numeric_limits<std::int64_t>::max() && first + delta < pdt_end_ms_)
    delta = std::min<std::int64_t>(0, pdt_end_ms_ - first);
  if (delta != 0) {
    // Nothing of this publish is in a view yet: the open segments are this packager's alone.
    wall_base_ms_ += delta;
    if (period_set_here_) begin_period(period_pdt_ms_ + delta);
    for (auto& r : renditions_)
      if (r.open) {
        r.open->pdt_ms += delta;
        if (period_set_here_) {
          r.open->period_start_ms = period_start_ms_;
          r.open->period_lead_ms = period_lead_ms_;
        }
      }
    if (availability_set_here_) availability_start_ms_ += delta;
  }
  log::info("origin", "program date time anchored",
            {{"stream", stream_},
             {"media_s", best.media_seconds},
             {"wall_ms", best.wall_ms},
             {"moved_ms", delta},
             {"from", arrival_ && arrival_->best() ? "ingest" : "packager"}});
}

bool Packager::close_part(Rendition& r, std::int64_t next_dts) {
  if (!r.open || r.pending.empty()) return false;
  auto part = std::make_shared<Part>();
  part->index = static_cast<std::uint32_t>(r.open->parts.size());
  part->duration = seconds(r, next_dts - r.pending.front().dts);
  part->independent = r.pending.front().keyframe || r.pending.front().type == media::MediaType::audio;
  part->chunk = cmaf::write_chunk(r.track, r.sequence++, r.pending, next_dts, part->index == 0);
  auto seg = std::make_shared<Segment>(*r.open);  // copy-on-write: published segments never change
  seg->parts.push_back(part);
  seg->duration += part->duration;
  seg->bytes += part->chunk.size();
  r.open = std::move(seg);
  r.pending.clear();
  return true;
}

void Packager::close_segment(Rendition& r) {
  auto seg = std::make_shared<Segment>(*r.open);
  seg->complete = true;
  r.open.reset();
  if (seg->parts.empty()) return;
  pdt_end_ms_ = std::max(pdt_end_ms_, seg->pdt_ms + static_cast<std::int64_t>(std::llround(seg->duration * 1000)));
  if (r.leader) leader_pdt_end_ms_ = seg->pdt_ms + static_cast<std::int64_t>(std::llround(seg->duration * 1000));
  if (seg->duration > target_duration_ + 0.5) {
    // TARGETDURATION must bound every segment; an encoder with a longer GOP than the target raises
    // it (once) rather than producing segments that break the playlist's promise.
    target_duration_ = static_cast<int>(std::ceil(seg->duration));
    log::warn("origin", "segment longer than the target: keyframe interval too long?",
              {{"stream", stream_}, {"duration", seg->duration}, {"target_duration", target_duration_}});
  }
  r.done.push_back(std::move(seg));
  while (r.done.size() > static_cast<std::size_t>(config_.window_segments) + kExtraSegments) r.done.pop_front();
}

void Packager::open_segment(Rendition& r, std::uint64_t msn, const media::MediaFrame& first) {
  auto seg = std::make_shared<Segment>();
  seg->msn = msn;
  seg->start_dts = first.dts;
  seg->pdt_ms = wall_base_ms_ + static_cast<std::int64_t>(std::llround((seconds(r, first.dts) - media_base_) * 1000));
  seg->init_version = r.track.version;
  if (r.leader && (r.discontinuity || r.done.empty())) {
    prev_period_end_ms_ = leader_pdt_end_ms_ >= 0 ? leader_pdt_end_ms_ - period_lead_ms_ : -1;
    begin_period(seg->pdt_ms);
    period_set_here_ = !settled_;
  }
  if (availability_start_ms_ < 0) {
    availability_start_ms_ = seg->pdt_ms;
    availability_set_here_ = !settled_;
  }
  seg->period_start_ms = period_start_ms_;
  seg->period_lead_ms = period_lead_ms_;
  bool first_ever = r.done.empty();
  if (r.leader) {
    seg->discontinuity = r.discontinuity && !first_ever;
    if (seg->discontinuity) ++discontinuities_;
    leader_discontinuity_ = seg->discontinuity;
  } else {
    // Followers take the discontinuity at the leader's segment of the same number, so every
    // rendition's discontinuity sequence, and every DASH period, agree.
    seg->discontinuity = leader_discontinuity_ && !first_ever;
  }
  r.discontinuity = false;
  seg->discontinuity_sequence = discontinuities_;
  r.open = std::move(seg);
}

void Packager::begin_period(std::int64_t pdt) {
  period_pdt_ms_ = pdt;
  period_start_ms_ = pdt;
  period_lead_ms_ = 0;
  if (prev_period_end_ms_ < 0) return;
  // A publisher that reconnects at once (or a new configuration) leaves a gap of a few hundred ms
  // between the Periods' media, which dash.js waits out as a stall (low latency), or at which it
  // may stop for good (standard latency: seen in 2 of 8 runs, the old Period's last segment never
  // appended). Closed on the MPD's timeline, the new media plays on from the old. Low latency: the
  // segments stay requestable when they really are, because availabilityTimeOffset shrinks by the
  // same amount (render_mpd), so the gaps closed add up to at most that offset. Standard latency
  // lists only complete segments, so none can be asked for early; the gaps closed add up to at most
  // half a segment (how far the MPD's timeline runs ahead of the wall clock). A longer gap (a
  // publisher away for seconds) stays: the player waits it out, keeping its latency.
  std::int64_t gap = pdt - prev_period_end_ms_;
  auto bound_ms = config_.low_latency ? std::llround(config_.segment_target.count() - advertised_part_target() * 1000)
                                      : static_cast<long long>(config_.segment_target.count() / 2);
  if (gap > 0 && gap < bound_ms) {
    period_start_ms_ = prev_period_end_ms_;
    period_lead_ms_ = gap;
  }
}

double Packager::advertised_part_target() const {
  double frame = 0;
  for (auto& r : renditions_)
    if (!r.leader && r.track.audio && r.track.audio->sample_rate)
      frame = std::max(frame, double(r.track.audio->samples_per_frame) / r.track.audio->sample_rate);
  // Rounded up to whole milliseconds, as playlists print it.
  return std::ceil((config_.part_target.count() / 1000.0 + frame) * 1000) / 1000;
}

std::shared_ptr<const StreamView> Packager::publish() {
  if (!settled_) settle_anchor();
  auto view = std::make_shared<StreamView>();
  view->version = ++version_;
  view->availability_start_ms = availability_start_ms_;
  view->part_target = advertised_part_target();
  view->live = live_;
  view->low_latency = config_.low_latency;
  view->target_duration = target_duration_;
  view->configured_part_target = config_.part_target.count() / 1000.0;
  view->segment_target = config_.segment_target.count() / 1000.0;
  double leader_t = -1;
  for (auto& r : renditions_)
    if (r.leader && r.last_dts >= 0) leader_t = seconds(r, r.last_dts);
  for (auto& r : renditions_) {
    auto rv = std::make_shared<RenditionView>();
    rv->name = r.name;
    rv->track = r.track;
    rv->inits = r.inits;
    rv->configs = r.configs;
    rv->segments.assign(r.done.begin(), r.done.end());
    if (r.open && !r.open->parts.empty()) rv->segments.push_back(r.open);
    double seconds_total = 0;
    std::uint64_t bytes_total = 0, peak = 0;
    for (auto& s : r.done) {
      if (s->duration <= 0) continue;
      seconds_total += s->duration;
      bytes_total += s->bytes;
      peak = std::max<std::uint64_t>(peak, static_cast<std::uint64_t>(s->bytes * 8 / s->duration));
    }
    if (seconds_total == 0 && r.open && r.open->duration > 0) {
      seconds_total = r.open->duration;
      bytes_total = r.open->bytes;
      peak = static_cast<std::uint64_t>(bytes_total * 8 / seconds_total);
    }
    rv->peak_bps = std::max<std::uint64_t>(peak, 1);
    rv->average_bps = seconds_total > 0 ? static_cast<std::uint64_t>(bytes_total * 8 / seconds_total) : 1;
    rv->declared_bps = r.track.bandwidth;
    // A follower video rendition more than one and a half segment targets behind the leader has
    // stopped (its rung was dropped or no longer fits the source).
    if (!r.leader && r.track.type == media::MediaType::video && leader_t >= 0)
      rv->active =
          r.last_dts >= 0 && leader_t - seconds(r, r.last_dts) <= 1.5 * config_.segment_target.count() / 1000.0;
    if (r.track.type == media::MediaType::video && seconds_total > 0) {
      std::uint64_t frames = 0;
      for (auto& s : r.done)
        for (auto& p : s->parts) frames += p->chunk.payload.size();
      if (frames == 0 && r.open)
        for (auto& p : r.open->parts) frames += p->chunk.payload.size();
      rv->frame_rate = frames / seconds_total;
    }
    view->renditions.push_back(std::move(rv));
  }
  render_view(*view, config_, target_duration_);
  return view;
}

}  // namespace sf::origin
