// MPEG-DASH MPD rendering for live, low-latency CMAF streams (ISO/IEC 23009-1; DASH-IF IOP
// low-latency modes; SPECS §10): a dynamic MPD with SegmentTemplate ($Number$) and SegmentTimeline,
// availabilityTimeOffset for chunked delivery, ServiceDescription latency targets and UTCTiming.
// A pure function over plain values: any thread; the result is a fresh string the caller owns.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace sf::dash {

// One SegmentTimeline S element: r + 1 segments of duration d, the first starting at t.
struct TimelineEntry {
  std::int64_t t = -1;  // timescale units; < 0 omits @t (continues from the previous entry)
  std::uint64_t d = 0;
  std::int64_t r = 0;  // repeat count; 0 omits @r
  bool operator==(const TimelineEntry&) const = default;
};

struct SegmentTemplate {
  std::uint32_t timescale = 0;
  std::string initialization;  // e.g. "$RepresentationID$/init.mp4"
  std::string media;           // e.g. "$RepresentationID$/$Number$.m4s"
  std::uint64_t start_number = 1;
  std::uint64_t duration = 0;  // @duration when there is no timeline; 0 omits it
  std::vector<TimelineEntry> timeline;
  std::uint64_t presentation_time_offset = 0;  // 0 omits it
  // Seconds a segment is requestable before its end (segment − chunk duration); 0 omits it.
  double availability_time_offset = 0;
  bool availability_time_complete = true;  // false: segments are delivered while being produced
  bool operator==(const SegmentTemplate&) const = default;
};

struct Representation {
  std::string id;
  std::string codecs;  // RFC 6381
  std::uint64_t bandwidth = 0;
  std::uint32_t width = 0;  // video; 0 omits width, height and frameRate
  std::uint32_t height = 0;
  std::uint32_t frame_rate_num = 0;
  std::uint32_t frame_rate_den = 1;       // frameRate="30" or "30000/1001"
  std::uint32_t audio_sampling_rate = 0;  // audio; 0 omits it
  std::uint32_t audio_channels = 0;       // AudioChannelConfiguration; 0 omits it
  // Written once on the AdaptationSet when every Representation of the set has the same one.
  SegmentTemplate segment_template;
};

enum class ContentType { video, audio };

struct AdaptationSet {
  std::uint32_t id = 0;
  ContentType content_type = ContentType::video;
  std::string mime_type;  // "video/mp4", "audio/mp4"
  std::string lang;       // "" omits it
  bool segment_alignment = true;
  std::uint32_t start_with_sap = 1;  // 0 omits it
  std::vector<Representation> representations;
};

// A new Period starts at each discontinuity (new codec configuration, timeline reset).
struct Period {
  std::string id;
  double start = 0;  // seconds after availabilityStartTime
  std::vector<AdaptationSet> adaptation_sets;
};

// ServiceDescription (23009-1 4th ed. Annex K), read by low-latency players such as dash.js.
struct ServiceDescription {
  std::uint32_t latency_target_ms = 0;
  std::uint32_t latency_min_ms = 0;  // 0 omits it
  std::uint32_t latency_max_ms = 0;  // 0 omits it
  double min_playback_rate = 0;      // PlaybackRate is written when both are set
  double max_playback_rate = 0;
};

struct Mpd {
  std::string profiles = "urn:mpeg:dash:profile:isoff-live:2011";
  std::int64_t availability_start_time_ms = 0;  // ms since the Unix epoch; fixed for the stream
  std::int64_t publish_time_ms = 0;
  double minimum_update_period = 0;         // seconds; 0 omits it
  double time_shift_buffer_depth = 0;       // seconds; 0 omits it
  double suggested_presentation_delay = 0;  // seconds; 0 omits it
  double max_segment_duration = 0;          // seconds; 0 omits it
  double min_buffer_time = 0;               // seconds
  std::optional<ServiceDescription> service_description;
  std::vector<Period> periods;
  std::string utc_timing_uri;  // urn:mpeg:dash:utc:http-iso:2014 source; "" omits UTCTiming
};

// type="dynamic" MPD document, UTF-8, with XML declaration.
std::string render_mpd(const Mpd& mpd);

}  // namespace sf::dash
