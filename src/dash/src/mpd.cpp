#include "sf/dash/mpd.h"

#include <charconv>
#include <chrono>
#include <cstdio>
#include <string_view>
#include <vector>

namespace sf::dash {
namespace {

std::string number(double v) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, ec == std::errc{} ? end : buf);
}

// xs:duration in seconds: PT2S, PT0.5S.
std::string duration(double seconds) {
  return "PT" + number(seconds) + "S";
}

// xs:dateTime, UTC with milliseconds.
std::string date_time(std::int64_t ms_since_epoch) {
  using namespace std::chrono;
  const sys_time<milliseconds> t{milliseconds{ms_since_epoch}};
  const auto day = floor<days>(t);
  const year_month_day ymd{day};
  const hh_mm_ss hms{t - day};
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
                static_cast<int>(hms.seconds().count()), static_cast<int>(hms.subseconds().count()));
  return buf;
}

// Indented elements; attribute values are escaped (URIs with '&' in a query are common).
class XmlWriter {
 public:
  XmlWriter() { out_ = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"; }

  XmlWriter& open(std::string_view name) {
    out_.append(2 * stack_.size(), ' ');
    out_ += '<';
    out_ += name;
    stack_.push_back({std::string(name), false});
    return *this;
  }
  XmlWriter& attr(std::string_view name, std::string_view value) {
    out_ += ' ';
    out_ += name;
    out_ += "=\"";
    for (char c : value) {
      switch (c) {
        case '&':
          out_ += "&amp;";
          break;
        case '<':
          out_ += "&lt;";
          break;
        case '>':
          out_ += "&gt;";
          break;
        case '"':
          out_ += "&quot;";
          break;
        default:
          out_ += c;
      }
    }
    out_ += '"';
    return *this;
  }
  XmlWriter& attr(std::string_view name, const char* value) { return attr(name, std::string_view(value)); }
  XmlWriter& attr(std::string_view name, const std::string& value) { return attr(name, std::string_view(value)); }
  XmlWriter& attr(std::string_view name, std::uint64_t value) { return attr(name, std::to_string(value)); }
  XmlWriter& attr(std::string_view name, std::int64_t value) { return attr(name, std::to_string(value)); }
  XmlWriter& attr(std::string_view name, std::uint32_t value) { return attr(name, std::to_string(value)); }
  XmlWriter& attr(std::string_view name, bool value) { return attr(name, value ? "true" : "false"); }

  // Ends the start tag; children follow until close().
  void children() {
    out_ += ">\n";
    stack_.back().has_children = true;
  }
  // Ends the element: "/>" if children() was not called, else the end tag.
  void close() {
    const Element e = std::move(stack_.back());
    stack_.pop_back();
    if (!e.has_children) {
      out_ += "/>\n";
      return;
    }
    out_.append(2 * stack_.size(), ' ');
    out_ += "</";
    out_ += e.name;
    out_ += ">\n";
  }

  std::string take() { return std::move(out_); }

 private:
  struct Element {
    std::string name;
    bool has_children;
  };
  std::string out_;
  std::vector<Element> stack_;
};

void segment_template(XmlWriter& x, const SegmentTemplate& t) {
  x.open("SegmentTemplate").attr("timescale", t.timescale);
  if (t.duration > 0) x.attr("duration", t.duration);
  x.attr("startNumber", t.start_number);
  if (t.presentation_time_offset > 0) x.attr("presentationTimeOffset", t.presentation_time_offset);
  if (t.availability_time_offset > 0) x.attr("availabilityTimeOffset", number(t.availability_time_offset));
  if (!t.availability_time_complete) x.attr("availabilityTimeComplete", false);
  x.attr("initialization", t.initialization).attr("media", t.media);
  if (!t.timeline.empty()) {
    x.children();
    x.open("SegmentTimeline").children();
    for (const TimelineEntry& s : t.timeline) {
      x.open("S");
      if (s.t >= 0) x.attr("t", s.t);
      x.attr("d", s.d);
      if (s.r != 0) x.attr("r", s.r);
      x.close();
    }
    x.close();
  }
  x.close();
}

void representation(XmlWriter& x, const Representation& r, bool with_template) {
  x.open("Representation").attr("id", r.id).attr("codecs", r.codecs).attr("bandwidth", r.bandwidth);
  if (r.width > 0) {
    x.attr("width", r.width).attr("height", r.height);
    if (r.frame_rate_num > 0) {
      std::string rate = std::to_string(r.frame_rate_num);
      if (r.frame_rate_den > 1) rate += "/" + std::to_string(r.frame_rate_den);
      x.attr("frameRate", rate);
    }
  }
  if (r.audio_sampling_rate > 0) x.attr("audioSamplingRate", r.audio_sampling_rate);
  if (r.audio_channels > 0 || with_template) x.children();
  if (r.audio_channels > 0) {
    // DASH-IF IOP §6.3.3.2: channel count for AAC.
    x.open("AudioChannelConfiguration")
        .attr("schemeIdUri", "urn:mpeg:dash:23003:3:audio_channel_configuration:2011")
        .attr("value", r.audio_channels)
        .close();
  }
  if (with_template) segment_template(x, r.segment_template);
  x.close();
}

void adaptation_set(XmlWriter& x, const AdaptationSet& a) {
  x.open("AdaptationSet")
      .attr("id", a.id)
      .attr("contentType", a.content_type == ContentType::video ? "video" : "audio")
      .attr("mimeType", a.mime_type);
  if (!a.lang.empty()) x.attr("lang", a.lang);
  x.attr("segmentAlignment", a.segment_alignment);
  if (a.start_with_sap > 0) x.attr("startWithSAP", a.start_with_sap);
  x.children();
  bool shared = !a.representations.empty();
  for (const Representation& r : a.representations) {
    shared = shared && r.segment_template == a.representations.front().segment_template;
  }
  // 23009-1 §5.3.9.2: a template on the AdaptationSet applies to each Representation in it.
  if (shared) segment_template(x, a.representations.front().segment_template);
  for (const Representation& r : a.representations) representation(x, r, !shared);
  x.close();
}

}  // namespace

std::string render_mpd(const Mpd& mpd) {
  XmlWriter x;
  x.open("MPD")
      .attr("xmlns", "urn:mpeg:dash:schema:mpd:2011")
      .attr("profiles", mpd.profiles)
      .attr("type", "dynamic")
      .attr("availabilityStartTime", date_time(mpd.availability_start_time_ms))
      .attr("publishTime", date_time(mpd.publish_time_ms));
  if (mpd.minimum_update_period > 0) x.attr("minimumUpdatePeriod", duration(mpd.minimum_update_period));
  if (mpd.time_shift_buffer_depth > 0) x.attr("timeShiftBufferDepth", duration(mpd.time_shift_buffer_depth));
  if (mpd.suggested_presentation_delay > 0) {
    x.attr("suggestedPresentationDelay", duration(mpd.suggested_presentation_delay));
  }
  if (mpd.max_segment_duration > 0) x.attr("maxSegmentDuration", duration(mpd.max_segment_duration));
  x.attr("minBufferTime", duration(mpd.min_buffer_time));
  x.children();

  if (mpd.service_description) {
    const ServiceDescription& sd = *mpd.service_description;
    x.open("ServiceDescription").attr("id", "0").children();
    x.open("Latency").attr("target", sd.latency_target_ms);
    if (sd.latency_min_ms > 0) x.attr("min", sd.latency_min_ms);
    if (sd.latency_max_ms > 0) x.attr("max", sd.latency_max_ms);
    x.close();
    if (sd.min_playback_rate > 0 && sd.max_playback_rate > 0) {
      x.open("PlaybackRate").attr("min", number(sd.min_playback_rate)).attr("max", number(sd.max_playback_rate));
      x.close();
    }
    x.close();
  }

  for (const Period& p : mpd.periods) {
    x.open("Period").attr("id", p.id).attr("start", duration(p.start)).children();
    for (const AdaptationSet& a : p.adaptation_sets) adaptation_set(x, a);
    x.close();
  }

  if (!mpd.utc_timing_uri.empty()) {
    x.open("UTCTiming").attr("schemeIdUri", "urn:mpeg:dash:utc:http-iso:2014").attr("value", mpd.utc_timing_uri);
    x.close();
  }
  x.close();
  return x.take();
}

}  // namespace sf::dash
