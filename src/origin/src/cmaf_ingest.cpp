#include "cmaf_ingest.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdlib>

namespace sf::origin {

std::string representation_of(std::string_view path) {
  if (auto p = path.find("Streams("); p != std::string_view::npos) {
    auto end = path.find(')', p);
    if (end != std::string_view::npos) return std::string(path.substr(p + 8, end - p - 8));
  }
  auto file_at = path.rfind('/');
  std::string_view file = file_at == std::string_view::npos ? path : path.substr(file_at + 1);
  if (auto p = file.find("stream"); p != std::string_view::npos) {
    auto q = p + 6;
    while (q < file.size() && std::isdigit(static_cast<unsigned char>(file[q]))) ++q;
    if (q > p + 6) return std::string(file.substr(p, q - p));
  }
  return file_at == std::string_view::npos ? std::string("0") : std::string(path.substr(0, file_at));
}

std::string rendition_of(std::string_view path) {
  auto p = path.find("Streams(");
  if (p == std::string_view::npos) return {};
  auto end = path.find(')', p);
  if (end == std::string_view::npos) return {};
  auto name = path.substr(p + 8, end - p - 8);
  bool valid = !name.empty() && name.size() <= 32 && name != "." && name != ".." &&
               std::all_of(name.begin(), name.end(), [](char c) {
                 return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
               });
  return valid ? std::string(name) : std::string();
}

Result<void> CmafIngest::push(const std::string& representation, const Bytes& body, const std::string& rendition,
                              std::uint32_t epoch) {
  std::lock_guard lock(mu_);
  last_push_ = std::chrono::steady_clock::now();
  auto& rep = representations_[representation];
  // An init segment starts with ftyp or moov; media segments with styp, sidx, prft, emsg or moof.
  auto type = body.size() >= 8 ? as_chars(body.view().subspan(4, 4)) : std::string_view();
  if (type == "ftyp" || type == "moov") {
    auto init = cmaf::parse_init_segment(body);
    if (!init) return std::unexpected(init.error());
    for (std::size_t i = 0; i < init->tracks.size(); ++i) {
      const auto& t = init->tracks[i];
      auto [it, fresh] = rep.ids.try_emplace(t.track_id, 0);
      if (fresh) it->second = next_track_id_++;
      auto& track = tracks_[it->second];
      track.track_id = it->second;
      track.ended = false;
      track.config = t;
      track.config.track_id = it->second;
      if (!rendition.empty() && t.type == media::MediaType::video) track.config.name = rendition;
      // Edit lists move tracks against each other by at most kMaxPresentationOffset either way;
      // adding that much to every track keeps decode times non-negative.
      const auto headroom = std::chrono::duration_cast<std::chrono::duration<double>>(cmaf::kMaxPresentationOffset);
      track.shift = init->presentation_offsets[i] + std::llround(headroom.count() * t.timescale);
      sink_->on_track(track.config);
    }
    rep.init = std::move(*init);
    return {};
  }
  if (type == "prft") return producer_reference_time(rep, body);
  if (rep.init.tracks.empty()) return fail(errc::invalid_argument);  // media before its init segment
  auto frames = cmaf::parse_fragments(body, rep.init);
  if (!frames) return std::unexpected(frames.error());
  if (!epoch_base_) epoch_base_ = epoch;
  epoch = epoch > *epoch_base_ ? epoch - *epoch_base_ : 0;
  for (auto& f : *frames) {
    f.epoch = epoch;
    auto id = rep.ids.find(f.track_id);
    if (id == rep.ids.end()) continue;
    auto& track = tracks_[id->second];
    f.track_id = track.track_id;
    f.dts += track.shift;
    f.pts += track.shift;
    track.last_seconds = seconds(f, track.config);
    track.ended = false;
    track.queue.push_back(std::move(f));
  }
  release(false);
  return {};
}

Result<void> CmafIngest::producer_reference_time(const Representation& rep, const Bytes& body) {
  // 14496-12 8.16.5: size, 'prft', version, flags (24 bits), reference_track_ID, ntp_timestamp
  // (64: seconds since 1900 . fraction), media_time (32 in version 0, else 64).
  auto in = body.view();
  if (in.size() < 28) return fail(errc::malformed);
  auto at = [&](std::size_t off, int n) {
    std::uint64_t v = 0;
    for (int i = 0; i < n; ++i) v = v << 8 | std::to_integer<std::uint64_t>(in[off + std::size_t(i)]);
    return v;
  };
  int version = std::to_integer<int>(in[8]);
  if (version > 1 || (version == 1 && in.size() < 32)) return fail(errc::malformed);
  auto track_id = static_cast<std::uint32_t>(at(12, 4));
  std::uint64_t ntp = at(16, 8);
  std::uint64_t media_time = version == 1 ? at(24, 8) : at(24, 4);
  auto id = rep.ids.find(track_id);
  if (!arrival_ || id == rep.ids.end()) return {};  // no init yet, or a track it does not hold
  const auto& track = tracks_[id->second];
  if (track.config.timescale == 0) return {};
  constexpr std::int64_t kNtpUnixOffset = 2208988800LL;
  std::int64_t wall_ms =
      (std::int64_t(ntp >> 32) - kNtpUnixOffset) * 1000 + std::int64_t(((ntp & 0xffffffffULL) * 1000) >> 32);
  // A producer clock a day off is not an arrival time.
  auto now = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
                 .count();
  if (std::llabs(wall_ms - now) > 86400000LL) return {};
  // In the timeline the packager sees: the pushed times plus the track's shift.
  double media = double(std::int64_t(media_time) + track.shift) / track.config.timescale;
  arrival_->mark(media, wall_ms);
  return {};
}

void CmafIngest::release(bool flush) {
  // Emit frames in decode-time order across tracks, while every track has something queued, or a
  // track is so far ahead (max_wait) that the others are not coming.
  for (;;) {
    Track* earliest = nullptr;
    bool any_empty = false;
    double newest = -1;
    for (auto& [_, t] : tracks_) {
      if (t.queue.empty()) {
        any_empty = any_empty || !t.ended;
        continue;
      }
      newest = std::max(newest, t.last_seconds);
      if (!earliest || seconds(t.queue.front(), t.config) < seconds(earliest->queue.front(), earliest->config))
        earliest = &t;
    }
    if (!earliest) return;
    double head = seconds(earliest->queue.front(), earliest->config);
    if (any_empty && !flush && newest - head < max_wait_) return;
    sink_->on_frame(earliest->queue.front());
    earliest->queue.pop_front();
  }
}

void CmafIngest::end_representation(const std::string& representation) {
  std::lock_guard lock(mu_);
  auto rep = representations_.find(representation);
  if (rep == representations_.end()) return;
  for (auto& [_, id] : rep->second.ids) tracks_[id].ended = true;
  release(false);  // what waited for it goes now
}

std::chrono::steady_clock::time_point CmafIngest::last_push() const {
  std::lock_guard lock(mu_);
  return last_push_;
}

}  // namespace sf::origin
