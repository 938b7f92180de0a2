// Cuts one stream's frames into CMAF parts and segments and publishes StreamViews. The first
// video track leads: its keyframes, once the segment target has passed, start segments; other
// tracks start their segment of the same number at the first frame at or after that time, so
// every rendition has the same media sequence numbers for the same media time. Parts are cut on
// the part target; other tracks cut theirs where the leader's parts begin, so a rendition never
// ends a segment with a sliver of a part. PART-TARGET is advertised with one frame of the
// followers' frame duration on top of the configured target (an AAC frame is 21 ms at 48 kHz),
// so those aligned parts stay within it.
// One per stream; called by the stream's single input thread.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sf/origin/origin.h"
#include "window.h"

namespace sf::origin {

class Packager {
 public:
  Packager(std::string stream, const Config& config);

  // A publisher (re)connected: what it sends next starts a new discontinuity, its media time
  // mapped onto the wall clock by `arrival` (null: the arrival of the first frame seen here).
  void restart(std::shared_ptr<const ArrivalClock> arrival = nullptr);
  // The stream's settings for the publish starting now (after restart()). When its targets or
  // latency mode differ from the current ones, the window starts afresh (TARGETDURATION and
  // PART-TARGET must not change within a playlist); sequence numbers and init versions go on, so
  // no URL ever names different bytes.
  void reconfigure(const Config& config);
  void on_track(const media::TrackConfig& track);
  // Returns a new view when the frame completed a part, else nullptr. A frame whose epoch is
  // higher than any before in this publish (a source timestamp jump, media/frame.h) starts a
  // discontinuity: every rendition's segment ends before the leader's next keyframe, which opens
  // the new discontinuity (EXT-X-DISCONTINUITY, a new DASH Period) with a new init version.
  std::shared_ptr<const StreamView> on_frame(const media::MediaFrame& frame);
  // The publisher left: the open parts are flushed and a final view returned.
  std::shared_ptr<const StreamView> on_stop();

 private:
  struct Rendition {
    std::string name;
    media::TrackConfig track;
    std::shared_ptr<std::map<std::uint32_t, Bytes>> inits = std::make_shared<std::map<std::uint32_t, Bytes>>();
    // The track as each init version describes it (RenditionView::configs).
    std::shared_ptr<std::map<std::uint32_t, media::TrackConfig>> configs =
        std::make_shared<std::map<std::uint32_t, media::TrackConfig>>();
    std::deque<std::shared_ptr<const Segment>> done;  // complete segments in the window
    std::shared_ptr<Segment> open;                    // the segment being filled
    std::vector<media::MediaFrame> pending;           // frames of the part being filled
    std::int64_t part_start = 0;
    std::int64_t last_dts = -1;
    std::int64_t frame_step = 0;  // estimate of the next frame's duration
    std::int64_t last_step = 0;   // the dts step before the last one
    std::uint32_t sequence = 1;   // mfhd
    bool discontinuity = true;
    bool leader = false;
    std::uint64_t followed_part = 0;  // follower: the leader part its part matches
    std::uint64_t frames_in_window = 0;
  };

  Rendition* rendition_for(std::uint32_t track_id);
  // A source discontinuity within the publish (a timestamp jump): as restart() and a new
  // configuration do, every rendition starts its next segment as a discontinuity, with a new
  // init version (the same bytes); times and anchor go on.
  void begin_discontinuity(std::uint32_t epoch);
  // Closes the part being filled (if any) with `next_dts` as the end of its last sample.
  bool close_part(Rendition& r, std::int64_t next_dts);
  void close_segment(Rendition& r);
  void open_segment(Rendition& r, std::uint64_t msn, const media::MediaFrame& first);
  std::shared_ptr<const StreamView> publish();
  // Sets the wall clock of media time: at the first frame of a publish, `t` its time in seconds.
  void anchor(double t);
  // Before the publish's first view: moves the anchor to the earliest implied start seen so far
  // (nothing of this publish has been published yet, so nothing listed changes).
  void settle_anchor();
  // The earliest implied start: media time and its arrival (the marks', else this packager's own).
  ArrivalClock::Mark best_arrival() const;
  double seconds(const Rendition& r, std::int64_t ticks) const { return double(ticks) / r.track.timescale; }

  std::string stream_;
  Config config_;
  std::vector<Rendition> renditions_;
  std::uint64_t next_msn_ = 0;  // msn the leader opens next
  std::uint64_t discontinuities_ = 0;
  std::uint32_t epoch_ = 0;           // the highest MediaFrame::epoch seen in this publish
  double leader_segment_start_ = -1;  // seconds, start of the leader's open segment
  double leader_segment_pts_ = -1;    // seconds, presentation time of its first frame
  std::uint64_t leader_msn_ = 0;
  bool have_leader_segment_ = false;
  bool leader_discontinuity_ = false;  // the leader's open segment starts a discontinuity
  double leader_part_start_ = -1;      // seconds, start of the leader's part being filled
  std::uint64_t leader_part_ = 0;      // counts the leader's parts; followers cut when it moves on
  double part_target_ = 0;             // seconds, as advertised: see advertised_part_target()
  double advertised_part_target() const;
  // The DASH Period of the discontinuity that starts at program date time `pdt` (the leader's
  // first segment): it starts where the previous one ends on the MPD's timeline when the gap
  // between them is shorter than availabilityTimeOffset, its media presented that much earlier
  // than its PDT (period_lead_ms_), else at `pdt`.
  void begin_period(std::int64_t pdt);
  std::int64_t period_start_ms_ = 0;      // wall clock where the current DASH Period starts
  std::int64_t period_pdt_ms_ = 0;        // pdt of the leader's first segment since the last discontinuity
  std::int64_t period_lead_ms_ = 0;       // Segment::period_lead_ms of the current Period
  std::int64_t prev_period_end_ms_ = -1;  // where the Period before it ends on the MPD's timeline; < 0: none
  std::int64_t leader_pdt_end_ms_ = -1;   // program date time where the leader's last closed segment ends
  std::int64_t availability_start_ms_ = -1;
  std::int64_t wall_base_ms_ = -1;  // wall clock at media time `media_base_` (seconds)
  double media_base_ = 0;
  std::shared_ptr<const ArrivalClock> arrival_;
  std::optional<ArrivalClock::Mark> own_best_;  // the earliest implied start of frames arriving here
  bool settled_ = false;                        // the anchor is final for this publish (its first view went out)
  bool period_set_here_ = false;                // period_start_ms_ was set in this publish
  bool availability_set_here_ = false;          // availability_start_ms_ was set in this publish
  std::int64_t pdt_end_ms_ = 0;                 // program date time where the last closed segment ends
  int target_duration_ = 2;
  std::uint64_t version_ = 0;
  bool live_ = true;
};

}  // namespace sf::origin
