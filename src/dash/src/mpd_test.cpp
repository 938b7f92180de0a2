#include "sf/dash/mpd.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace sf::dash {
namespace {

using namespace std::chrono_literals;

std::int64_t ms_at(std::chrono::sys_days day, std::chrono::seconds time_of_day) {
  return std::chrono::duration_cast<std::chrono::milliseconds>((day + time_of_day).time_since_epoch()).count();
}

const std::chrono::sys_days kDay{2025y / std::chrono::March / 1};

SegmentTemplate video_template() {
  SegmentTemplate t;
  t.timescale = 90000;
  t.initialization = "$RepresentationID$/init.mp4";
  t.media = "$RepresentationID$/$Number$.m4s";
  t.start_number = 1000;
  t.timeline = {{900000, 180000, 2}};
  t.availability_time_offset = 1.5;
  t.availability_time_complete = false;
  return t;
}

Representation video_720() {
  Representation r;
  r.id = "v720";
  r.codecs = "avc1.64001f";
  r.bandwidth = 3000000;
  r.width = 1280;
  r.height = 720;
  r.frame_rate_num = 30;
  r.segment_template = video_template();
  return r;
}

Representation audio_en() {
  Representation r;
  r.id = "a";
  r.codecs = "mp4a.40.2";
  r.bandwidth = 128000;
  r.audio_sampling_rate = 48000;
  r.audio_channels = 2;
  r.segment_template.timescale = 48000;
  r.segment_template.initialization = "$RepresentationID$/init.mp4";
  r.segment_template.media = "$RepresentationID$/$Number$.m4s";
  r.segment_template.start_number = 1000;
  r.segment_template.timeline = {{480000, 96256, 0}, {-1, 95232, 1}};
  return r;
}

Mpd low_latency_mpd() {
  Mpd m;
  m.availability_start_time_ms = ms_at(kDay, 20h);
  m.publish_time_ms = ms_at(kDay, 20h + 10min) + 250;
  m.minimum_update_period = 2;
  m.time_shift_buffer_depth = 30;
  m.max_segment_duration = 2;
  m.min_buffer_time = 1;
  m.service_description = ServiceDescription{3000, 2000, 6000, 0.96, 1.04};
  AdaptationSet video;
  video.id = 0;
  video.content_type = ContentType::video;
  video.mime_type = "video/mp4";
  video.representations = {video_720()};
  AdaptationSet audio;
  audio.id = 1;
  audio.content_type = ContentType::audio;
  audio.mime_type = "audio/mp4";
  audio.lang = "en";
  audio.representations = {audio_en()};
  m.periods = {{"p0", 0, {video, audio}}};
  m.utc_timing_uri = "https://time.example.com/iso";
  return m;
}

TEST(Mpd, RendersLowLatencyLiveMpd) {
  EXPECT_EQ(render_mpd(low_latency_mpd()),
            R"(<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-live:2011" type="dynamic" availabilityStartTime="2025-03-01T20:00:00.000Z" publishTime="2025-03-01T20:10:00.250Z" minimumUpdatePeriod="PT2S" timeShiftBufferDepth="PT30S" maxSegmentDuration="PT2S" minBufferTime="PT1S">
  <ServiceDescription id="0">
    <Latency target="3000" min="2000" max="6000"/>
    <PlaybackRate min="0.96" max="1.04"/>
  </ServiceDescription>
  <Period id="p0" start="PT0S">
    <AdaptationSet id="0" contentType="video" mimeType="video/mp4" segmentAlignment="true" startWithSAP="1">
      <SegmentTemplate timescale="90000" startNumber="1000" availabilityTimeOffset="1.5" availabilityTimeComplete="false" initialization="$RepresentationID$/init.mp4" media="$RepresentationID$/$Number$.m4s">
        <SegmentTimeline>
          <S t="900000" d="180000" r="2"/>
        </SegmentTimeline>
      </SegmentTemplate>
      <Representation id="v720" codecs="avc1.64001f" bandwidth="3000000" width="1280" height="720" frameRate="30"/>
    </AdaptationSet>
    <AdaptationSet id="1" contentType="audio" mimeType="audio/mp4" lang="en" segmentAlignment="true" startWithSAP="1">
      <SegmentTemplate timescale="48000" startNumber="1000" initialization="$RepresentationID$/init.mp4" media="$RepresentationID$/$Number$.m4s">
        <SegmentTimeline>
          <S t="480000" d="96256"/>
          <S d="95232" r="1"/>
        </SegmentTimeline>
      </SegmentTemplate>
      <Representation id="a" codecs="mp4a.40.2" bandwidth="128000" audioSamplingRate="48000">
        <AudioChannelConfiguration schemeIdUri="urn:mpeg:dash:23003:3:audio_channel_configuration:2011" value="2"/>
      </Representation>
    </AdaptationSet>
  </Period>
  <UTCTiming schemeIdUri="urn:mpeg:dash:utc:http-iso:2014" value="https://time.example.com/iso"/>
</MPD>
)");
}

TEST(Mpd, DifferingTemplatesStayOnTheirRepresentations) {
  Mpd m = low_latency_mpd();
  Representation v360 = video_720();
  v360.id = "v360";
  v360.segment_template.media = "360/$Number$.m4s";
  m.periods[0].adaptation_sets[0].representations.push_back(v360);
  const std::string xml = render_mpd(m);
  EXPECT_NE(xml.find("frameRate=\"30\">\n        <SegmentTemplate"), std::string::npos);
  EXPECT_NE(xml.find("media=\"360/$Number$.m4s\""), std::string::npos);
  EXPECT_EQ(xml.find("startWithSAP=\"1\">\n      <SegmentTemplate timescale=\"90000\""), std::string::npos);
}

TEST(Mpd, AttributeValuesAreEscaped) {
  Mpd m = low_latency_mpd();
  m.periods[0].adaptation_sets[0].representations[0].segment_template.media = "$Number$.m4s?token=a&b=\"c\"";
  EXPECT_NE(render_mpd(m).find("media=\"$Number$.m4s?token=a&amp;b=&quot;c&quot;\""), std::string::npos);
}

TEST(Mpd, FractionalFrameRateIsWrittenAsRatio) {
  Mpd m = low_latency_mpd();
  auto& r = m.periods[0].adaptation_sets[0].representations[0];
  r.frame_rate_num = 30000;
  r.frame_rate_den = 1001;
  EXPECT_NE(render_mpd(m).find("frameRate=\"30000/1001\""), std::string::npos);
}

TEST(Mpd, OptionalElementsAreOmitted) {
  Mpd m = low_latency_mpd();
  m.service_description.reset();
  m.utc_timing_uri.clear();
  m.minimum_update_period = 0;
  const std::string xml = render_mpd(m);
  EXPECT_EQ(xml.find("ServiceDescription"), std::string::npos);
  EXPECT_EQ(xml.find("UTCTiming"), std::string::npos);
  EXPECT_EQ(xml.find("minimumUpdatePeriod"), std::string::npos);
}

TEST(Mpd, EachDiscontinuityIsAPeriodWithItsStart) {
  Mpd m = low_latency_mpd();
  Period second = m.periods[0];
  second.id = "p1";
  second.start = 62.5;
  m.periods.push_back(second);
  const std::string xml = render_mpd(m);
  EXPECT_NE(xml.find("<Period id=\"p0\" start=\"PT0S\">"), std::string::npos);
  EXPECT_NE(xml.find("<Period id=\"p1\" start=\"PT62.5S\">"), std::string::npos);
}

// xmllint (libxml2) when installed; otherwise a tag balance check.
bool well_formed(const std::string& xml) {
  namespace fs = std::filesystem;
  if (std::system("command -v xmllint >/dev/null 2>&1") == 0) {
    char tmpl[] = "/tmp/sf_dash_test.XXXXXX";
    const int fd = ::mkstemp(tmpl);
    if (fd < 0) return false;
    ::close(fd);
    std::ofstream(tmpl) << xml;
    const int status = std::system(("xmllint --noout '" + std::string(tmpl) + "' 2>&1").c_str());
    fs::remove(tmpl);
    return status == 0;
  }
  std::vector<std::string> open;
  for (std::size_t at = xml.find('<'); at != std::string::npos; at = xml.find('<', at + 1)) {
    const std::size_t end = xml.find('>', at);
    if (end == std::string::npos) return false;
    const std::string tag = xml.substr(at + 1, end - at - 1);
    if (tag.starts_with('?') || tag.ends_with('/')) continue;
    if (tag.starts_with('/')) {
      if (open.empty() || open.back() != tag.substr(1)) return false;
      open.pop_back();
    } else {
      open.push_back(tag.substr(0, tag.find(' ')));
    }
  }
  return open.empty();
}

TEST(Mpd, OutputIsWellFormedXml) {
  Mpd m = low_latency_mpd();
  m.periods[0].adaptation_sets[0].representations[0].segment_template.media = "$Number$.m4s?t=a&b=<c>";
  Representation v360 = video_720();
  v360.id = "v360";
  v360.segment_template.timeline.push_back({-1, 179100, 0});
  m.periods[0].adaptation_sets[0].representations.push_back(v360);
  m.periods.push_back(m.periods[0]);
  m.periods[1].id = "p1";
  EXPECT_TRUE(well_formed(render_mpd(m)));
}

}  // namespace
}  // namespace sf::dash
