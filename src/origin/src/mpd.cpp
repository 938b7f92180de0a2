#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>

#include "render.h"
#include "sf/dash/mpd.h"

namespace sf::origin {

std::string render_mpd(const StreamView& view, const Config& config, int target_duration) {
  dash::Mpd mpd;
  mpd.availability_start_time_ms = view.availability_start_ms;
  mpd.publish_time_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  double part = view.part_target > 0 ? view.part_target : config.part_target.count() / 1000.0;
  mpd.minimum_update_period = config.segment_target.count() / 1000.0;
  mpd.time_shift_buffer_depth = double(config.window_segments) * target_duration;
  mpd.suggested_presentation_delay = 3.0 * target_duration;
  mpd.max_segment_duration = target_duration;
  // Standard latency: whole segments, no chunked availability, no low-latency service description.
  const bool ll = config.low_latency;
  mpd.min_buffer_time = ll ? 2 * part : mpd.minimum_update_period;
  if (ll) {
    // 3 s for the default 0.5 s parts; longer parts (a stream's setting) need more, as in HLS
    // where PART-HOLD-BACK is a few part targets.
    auto target = std::max<std::uint32_t>(
        3000, static_cast<std::uint32_t>(std::lround(part * double(config.part_hold_back_parts + 1) * 1000)));
    mpd.service_description = dash::ServiceDescription{target, target / 2, target * 2, 0.96, 1.04};
  }
  mpd.utc_timing_uri = "/time";

  // One Period per discontinuity group, in order; a Representation's presentationTimeOffset maps
  // its tfdt onto the period's timeline, so MPD times and media times agree for every track. The
  // video renditions (a transcoder's rungs) are Representations of one AdaptationSet, as are the
  // audio ones: they share segment numbers and times, so a player switches between them.
  std::map<std::uint64_t, dash::Period> periods;
  std::map<std::uint64_t, std::map<std::uint32_t, dash::AdaptationSet>> sets;  // period -> set id -> set
  std::map<std::uint64_t, std::uint64_t> last_msn;                             // period -> its last listed msn
  std::map<std::uint32_t, std::uint64_t> window_start;  // set id -> first msn any of its renditions lists
  std::map<std::uint64_t, std::uint64_t> first_msn;     // period -> its first listed msn
  // The leader's newest Period: only there does a timeline go on past its last segment.
  std::uint64_t newest = 0;
  for (auto& r : view.renditions)
    if (r->active && (r->track.video || r->track.audio) && !r->segments.empty())
      newest = std::max(newest, r->segments.back()->discontinuity_sequence);
  for (auto& r : view.renditions) {
    if (!r->track.video && !r->track.audio) continue;
    if (!r->active) continue;
    std::uint32_t set_id = r->track.video ? 0 : 1;
    std::size_t from = first_listed(*r, config.window_segments);
    if (from < r->segments.size()) {
      auto [at, fresh] = window_start.try_emplace(set_id, r->segments[from]->msn);
      if (!fresh) at->second = std::min(at->second, r->segments[from]->msn);
    }
    std::map<std::uint64_t, dash::Representation> reps;
    auto ts = r->track.timescale;
    // Low latency, live: the timeline ends with the segment in progress (or, between segments,
    // the next one) as an S element of the target duration repeated until the next MPD update
    // (23009-1 5.3.9.6.1, @r = -1), so a client addresses the open segment and the ones after it
    // from the wall clock, as with @duration, and asks for each availabilityTimeOffset early: the
    // origin sends it chunk by chunk while it is made. Each MPD update replaces the estimate with
    // the true durations.
    const bool extend = ll && view.live;
    const auto target_ticks =
        static_cast<std::uint64_t>(std::llround(config.segment_target.count() / 1000.0 * double(ts)));
    for (std::size_t i = from; i < r->segments.size(); ++i) {
      const Segment& s = *r->segments[i];
      if (!s.complete && !extend) continue;
      auto& period = periods[s.discontinuity_sequence];
      auto& last = last_msn[s.discontinuity_sequence];
      last = std::max(last, s.msn);
      auto [first, none] = first_msn.try_emplace(s.discontinuity_sequence, s.msn);
      if (!none) first->second = std::min(first->second, s.msn);
      if (period.id.empty()) {
        period.id = fmt::format("p{}", s.discontinuity_sequence);
        period.start = double(s.period_start_ms - view.availability_start_ms) / 1000.0;
      }
      auto [it, fresh] = reps.try_emplace(s.discontinuity_sequence);
      auto& rep = it->second;
      if (fresh) {
        rep.id = r->name;
        rep.bandwidth = r->bandwidth();
        auto& st = rep.segment_template;
        st.timescale = ts;
        st.initialization = fmt::format("$RepresentationID$/init{}.mp4", s.init_version);
        st.media = "$RepresentationID$/s$Number$.m4s";
        st.start_number = s.msn;
        // A Period that closed the gap before it presents its media period_lead_ms earlier than
        // its PDT, and says each segment is requestable that much less early: the same wall clock.
        auto offset = static_cast<std::int64_t>(
            std::llround(double(s.pdt_ms - s.period_lead_ms - s.period_start_ms) * ts / 1000.0));
        st.presentation_time_offset = static_cast<std::uint64_t>(std::max<std::int64_t>(0, s.start_dts - offset));
        const auto ato_ms = std::llround(config.segment_target.count() - part * 1000) - s.period_lead_ms;
        st.availability_time_offset = ll ? double(std::max<std::int64_t>(0, ato_ms)) / 1000.0 : 0;
        st.availability_time_complete = !ll;
        // The configuration this Period's segments were made with: an old Period keeps its codec
        // and size after a new configuration started the next one (a Period's content does not
        // change across MPD updates; dash.js otherwise loses track of the old Period's video).
        const media::TrackConfig& track = r->config(s.init_version);
        if (track.video) {
          rep.codecs = track.video->codec_string;
          rep.width = track.video->width;
          rep.height = track.video->height;
          rep.frame_rate_num = static_cast<std::uint32_t>(std::lround(r->frame_rate > 0 ? r->frame_rate : 30));
        } else if (track.audio) {
          rep.codecs = track.audio->codec_string;
          rep.audio_sampling_rate = track.audio->sample_rate;
          rep.audio_channels = track.audio->channels;
        }
      }
      auto d = static_cast<std::uint64_t>(std::llround(s.duration * ts));
      // S@t is media time, as tfdt (23009-1 5.3.9.6: @t minus @presentationTimeOffset is the MPD
      // time in the Period); a Period whose media does not start near 0 (after a timestamp jump the
      // times go on) has a large offset, and S@t less the offset put its segments at the wrong times.
      auto t = s.start_dts;
      // A track still finishing its segment of an older Period (the leader started the new one a
      // frame earlier) ends there: its next segment is in the new Period.
      const bool goes_on = s.discontinuity_sequence == newest;
      if (!s.complete) {
        rep.segment_template.timeline.push_back({std::max<std::int64_t>(0, t), target_ticks, goes_on ? -1 : 0});
        break;  // the open segment is the last one
      }
      rep.segment_template.timeline.push_back({std::max<std::int64_t>(0, t), d, 0});
      if (extend && goes_on && i + 1 == r->segments.size())  // between segments: the next one is on its way
        rep.segment_template.timeline.push_back({-1, target_ticks, -1});
    }
    for (auto& [seq, rep] : reps) {
      auto& set = sets[seq][set_id];
      if (set.representations.empty()) {
        set.id = set_id;
        set.content_type = r->track.video ? dash::ContentType::video : dash::ContentType::audio;
        set.mime_type = r->track.video ? "video/mp4" : "audio/mp4";
      }
      set.representations.push_back(std::move(rep));
    }
  }
  for (auto& [seq, by_id] : sets)
    for (auto& [_, set] : by_id) {
      // Highest rung first, as in the multivariant playlist.
      std::stable_sort(
          set.representations.begin(), set.representations.end(),
          [](const dash::Representation& a, const dash::Representation& b) { return a.height > b.height; });
      periods[seq].adaptation_sets.push_back(std::move(set));
    }
  // A Period leaves with the first content type whose window moved past it: the renditions'
  // windows end a segment apart for a moment (the video's segment closes at its keyframe, the
  // audio's at its next frame), and a Period listed with audio only would be played that way by a
  // client that reads it then (23009-1 5.3.2: a Period's AdaptationSets are its content).
  std::uint64_t start = 0;
  for (auto& [_, msn] : window_start) start = std::max(start, msn);
  // A new Period waits, while it has its first segment only, for the content types of the Period
  // before it: the audio starts its segment a frame after the video's keyframe. A publish that
  // dropped a type is listed without it from its second segment on.
  if (periods.size() >= 2) {
    auto newest_it = std::prev(periods.end());
    auto before = std::prev(newest_it);
    if (first_msn[newest_it->first] == last_msn[newest_it->first] &&
        newest_it->second.adaptation_sets.size() < before->second.adaptation_sets.size())
      periods.erase(newest_it);
  }
  for (auto& [seq, p] : periods)
    if (last_msn[seq] >= start) mpd.periods.push_back(std::move(p));
  return dash::render_mpd(mpd);
}

}  // namespace sf::origin
