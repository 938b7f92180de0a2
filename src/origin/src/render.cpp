#include "render.h"

#include <fmt/format.h>

#include <algorithm>

#include "sf/hls/playlist.h"

namespace sf::origin {

std::size_t first_listed(const RenditionView& r, std::int64_t window_segments) {
  std::size_t complete = 0;
  for (auto& s : r.segments) complete += s->complete ? 1 : 0;
  std::size_t drop = complete > std::size_t(window_segments) ? complete - std::size_t(window_segments) : 0;
  return drop;
}

namespace {

std::string segment_uri(std::uint64_t msn) {
  return fmt::format("s{}.m4s", msn);
}
std::string part_uri(std::uint64_t msn, std::uint32_t index) {
  return fmt::format("s{}.p{}.m4s", msn, index);
}

hls::MediaPlaylist media_playlist(const StreamView& view, const RenditionView& r, const Config& config,
                                  int target_duration) {
  hls::MediaPlaylist pl;
  double part_target = view.part_target > 0 ? view.part_target : config.part_target.count() / 1000.0;
  // Standard HLS (the stream's latency "hls"): an RFC 8216 playlist of whole segments, without
  // parts, preload hint, rendition reports or EXT-X-SERVER-CONTROL (no blocking reloads, no delta
  // updates), so players keep the classic hold back of 3 target durations (RFC 8216 §6.3.3).
  const bool ll = config.low_latency;
  pl.target_duration = target_duration;
  pl.part_target = ll ? part_target : 0;
  pl.part_hold_back = ll ? part_target * double(config.part_hold_back_parts) : 0;
  pl.can_block_reload = ll;
  pl.hold_back = ll ? 3.0 * target_duration : 0;
  pl.can_skip_until = ll ? 6.0 * target_duration : 0;
  pl.ended = false;
  std::size_t from = first_listed(r, config.window_segments);
  if (from < r.segments.size()) {
    pl.media_sequence = r.segments[from]->msn;
    pl.discontinuity_sequence = r.segments[from]->discontinuity_sequence;
  }
  for (std::size_t i = from; i < r.segments.size(); ++i) {
    const Segment& s = *r.segments[i];
    if (!ll && !s.complete) break;
    hls::Segment hs;
    hs.msn = s.msn;
    hs.duration = s.duration;
    hs.uri = segment_uri(s.msn);
    hs.program_date_time_ms = s.pdt_ms;
    hs.discontinuity = s.discontinuity && i != from;
    hs.map_uri = fmt::format("init{}.mp4", s.init_version);
    hs.complete = s.complete;
    if (ll)
      for (auto& p : s.parts) hs.parts.push_back({p->duration, p->independent, part_uri(s.msn, p->index)});
    pl.segments.push_back(std::move(hs));
  }
  // The next part: in the open segment, or part 0 of the next one.
  if (!ll) return pl;
  if (view.live && !r.segments.empty()) {
    const Segment& last = *r.segments.back();
    pl.preload_hint_uri =
        last.complete ? part_uri(last.msn + 1, 0) : part_uri(last.msn, static_cast<std::uint32_t>(last.parts.size()));
  }
  for (auto& other : view.renditions) {
    if (other.get() == &r || !other->active) continue;
    auto edge = other->last_part();
    if (!edge) continue;
    pl.reports.push_back({fmt::format("../{}/index.m3u8", other->name), edge->first, edge->second});
  }
  return pl;
}

}  // namespace

void render_view(StreamView& view, const Config& config, int target_duration) {
  std::vector<std::shared_ptr<RenditionView>> mutable_views;
  for (auto& r : view.renditions) {
    auto& rv = const_cast<RenditionView&>(*r);  // still private to the input thread: not yet published
    auto pl = media_playlist(view, rv, config, target_duration);
    hls::RenderOptions opt;
    // LL-HLS 6.2.2: part tags go once they are more than 3 TD from the end. The renderer keeps
    // the parts of segments that end within the window, so a window of 2 TD keeps every listed
    // part (segments last at most TD) within 3 TD of the end.
    opt.part_window_seconds = 2.0 * target_duration;
    // And at most the last two complete segments keep their parts: segments a little shorter than
    // TD (audio following the video grid, short targets of 1 s) must not leave parts on a fourth
    // segment from the end, which strict parsers count as older than 3 TD.
    double total = 0;
    std::vector<double> ends;
    for (auto& hs : pl.segments) {
      for (auto& p : hs.parts) total += hs.complete ? 0 : p.duration;
      if (hs.complete) total += hs.duration;
      if (hs.complete) ends.push_back(total);
    }
    if (ends.size() >= 3) opt.part_window_seconds = std::min(opt.part_window_seconds, total - ends[ends.size() - 3]);
    rv.playlist = Bytes::adopt(hls::render_media_playlist(pl, opt));
    opt.skip = true;
    rv.playlist_skip = Bytes::adopt(hls::render_media_playlist(pl, opt));
  }

  const RenditionView* audio = nullptr;
  for (auto& r : view.renditions)
    if (r->track.type == media::MediaType::audio && !audio) audio = r.get();
  std::vector<hls::Variant> variants;
  std::vector<hls::AudioRendition> audios;
  bool ladder = false;  // a video rendition declares its rate: a transcoder's ladder
  if (audio) audios.push_back({"audio", "Main", "und", "audio/index.m3u8", true});
  for (auto& r : view.renditions) {
    if (r->track.type != media::MediaType::video || !r->track.video || !r->active) continue;
    hls::Variant v;
    ladder = ladder || r->declared_bps > 0;
    v.bandwidth = r->bandwidth() + (audio ? audio->bandwidth() : 0);
    v.average_bandwidth = r->average_bps + (audio ? audio->average_bps : 0);
    v.codecs = r->track.video->codec_string;
    if (audio && audio->track.audio) v.codecs += "," + audio->track.audio->codec_string;
    v.width = static_cast<int>(r->track.video->width);
    v.height = static_cast<int>(r->track.video->height);
    v.frame_rate = r->frame_rate;
    v.uri = r->name + "/index.m3u8";
    v.audio_group = audio ? "audio" : "";
    variants.push_back(std::move(v));
  }
  // A ladder is listed from the highest rung down (renditions arrive smallest first, since the
  // smallest rung leads the packager), a rendition without a declared rate (the source passed
  // through as a rung) by its measured peak; renditions of a source alone keep their order.
  if (ladder)
    std::stable_sort(variants.begin(), variants.end(),
                     [](const hls::Variant& a, const hls::Variant& b) { return a.bandwidth > b.bandwidth; });
  if (variants.empty() && audio && audio->track.audio) {
    hls::Variant v;  // audio-only: the audio playlist is the variant
    v.bandwidth = audio->peak_bps;
    v.average_bandwidth = audio->average_bps;
    v.codecs = audio->track.audio->codec_string;
    v.uri = audio->name + "/index.m3u8";
    variants.push_back(std::move(v));
    audios.clear();
  }
  view.multivariant = Bytes::adopt(hls::render_multivariant(variants, audios, ""));
  view.mpd = Bytes::adopt(render_mpd(view, config, target_duration));
}

}  // namespace sf::origin
