#include "cmaf_ingest.h"

#include <algorithm>
#include <cctype>
#include <cmath>

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

Result<void> CmafIngest::push(const std::string& representation, const Bytes& body, const std::string& rendition) {
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
  if (rep.init.tracks.empty()) return fail(errc::invalid_argument);  // media before its init segment
  auto frames = cmaf::parse_fragments(body, rep.init);
  if (!frames) return std::unexpected(frames.error());
  for (auto& f : *frames) {
    auto id = rep.ids.find(f.track_id);
    if (id == rep.ids.end()) continue;
    auto& track = tracks_[id->second];
    f.track_id = track.track_id;
    f.dts += track.shift;
    f.pts += track.shift;
    track.last_seconds = seconds(f, track.config);
    track.queue.push_back(std::move(f));
  }
  release(false);
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
        any_empty = true;
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

std::chrono::steady_clock::time_point CmafIngest::last_push() const {
  std::lock_guard lock(mu_);
  return last_push_;
}

}  // namespace sf::origin
