// Puts a stream's transcoded output back in input order. The input thread opens one slot per
// source event (a video frame, an audio frame, a track); workers add items to slots and finish
// their share of the work; complete slots at the front are handed to the sink in order, each
// slot's items sorted by (picture, rung size, kind), so the smallest rung (the packager's leader)
// always precedes the other rungs' frames of the same instant. One thread emits at a time;
// nothing is held locked while the sink runs. Any thread.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <tuple>
#include <vector>

#include "sf/media/frame.h"

namespace sf::transcode {

struct SeqItem {
  enum Kind : std::uint8_t { track = 0, frame = 1, withdraw = 2 };
  std::uint32_t picture = 0;  // picture index within the slot
  std::uint64_t area = 0;     // the rung's pixels: smaller first
  Kind kind = frame;
  media::TrackConfig track_config;
  media::MediaFrame media;
  std::uint32_t track_id = 0;  // withdraw

  auto key() const { return std::tuple(picture, area, std::uint8_t(kind)); }
};

class Sequencer {
 public:
  using Emit = std::function<void(SeqItem&)>;
  explicit Sequencer(Emit emit) : emit_(std::move(emit)) {}

  // Input thread: a new slot with `pending` shares of work; `media_t` in seconds (for lag).
  std::uint64_t open(int pending, double media_t) {
    std::uint64_t id;
    {
      std::lock_guard lk(mu_);
      id = next_id_++;
      slots_.push_back(Slot{id, pending, media_t, {}});
      if (media_t >= 0) ++timed_;
    }
    if (pending == 0) drain();
    return id;
  }
  void add_pending(std::uint64_t id, int n) {
    std::lock_guard lk(mu_);
    if (auto* s = find(id)) s->pending += n;
  }
  void add(std::uint64_t id, SeqItem item) {
    std::lock_guard lk(mu_);
    if (auto* s = find(id)) s->items.push_back(std::move(item));
  }
  // One share of the slot's work is finished.
  void done(std::uint64_t id) {
    {
      std::lock_guard lk(mu_);
      if (auto* s = find(id)) --s->pending;
    }
    drain();
  }
  std::size_t depth() const {
    std::lock_guard lk(mu_);
    return slots_.size();
  }
  // Slots opened with a media time (source video frames) not yet emitted.
  std::size_t timed_depth() const {
    std::lock_guard lk(mu_);
    return timed_;
  }
  // Media time of the oldest slot not yet emitted (negative when none).
  double front_time() const {
    std::lock_guard lk(mu_);
    for (auto& s : slots_)
      if (s.media_t >= 0) return s.media_t;
    return -1;
  }
  // Blocks until fewer than `n` timed slots are open (file input only, never on an I/O thread).
  void wait_below(std::size_t n) {
    std::unique_lock lk(mu_);
    space_.wait(lk, [&] { return timed_ < n; });
  }

 private:
  struct Slot {
    std::uint64_t id;
    int pending;
    double media_t;
    std::vector<SeqItem> items;
  };
  Slot* find(std::uint64_t id) {
    if (slots_.empty() || id < slots_.front().id) return nullptr;
    std::uint64_t at = id - slots_.front().id;
    return at < slots_.size() ? &slots_[at] : nullptr;
  }
  void drain() {
    while (true) {
      std::vector<Slot> ready;
      {
        std::lock_guard lk(mu_);
        if (emitting_) return;  // the emitting thread comes back for these
        while (!slots_.empty() && slots_.front().pending <= 0) {
          if (slots_.front().media_t >= 0) --timed_;
          ready.push_back(std::move(slots_.front()));
          slots_.pop_front();
        }
        if (ready.empty()) return;
        emitting_ = true;
      }
      space_.notify_all();
      for (auto& s : ready) {
        std::stable_sort(s.items.begin(), s.items.end(),
                         [](const SeqItem& a, const SeqItem& b) { return a.key() < b.key(); });
        for (auto& item : s.items) emit_(item);
      }
      std::lock_guard lk(mu_);
      emitting_ = false;
    }
  }

  Emit emit_;
  mutable std::mutex mu_;
  std::condition_variable space_;
  std::deque<Slot> slots_;
  std::uint64_t next_id_ = 0;
  std::size_t timed_ = 0;
  bool emitting_ = false;
};

}  // namespace sf::transcode
