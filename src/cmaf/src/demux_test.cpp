#include "sf/cmaf/demux.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "sf/cmaf/fmp4.h"
#include "sf/media/codec_config.h"

namespace sf::cmaf {
namespace {

namespace fs = std::filesystem;
using media::Codec;
using media::MediaFrame;
using media::MediaType;
using media::TrackConfig;

// ---- helpers ----

Bytes hex(std::string_view text) {
  std::vector<std::byte> out;
  for (std::size_t i = 0; i + 1 < text.size(); i += 2) {
    out.push_back(static_cast<std::byte>(std::stoi(std::string(text.substr(i, 2)), nullptr, 16)));
  }
  return Bytes::copy_of(out);
}

// An AVCDecoderConfigurationRecord (High 3.1, 1280x720) as ffmpeg wrote it, an AAC-LC 48 kHz
// stereo AudioSpecificConfig, and the HEVC/AV1 records of the writer's tests.
constexpr std::string_view kAvcc720p =
    "0164001fffe1001a6764001facd9405005bb0110000003001000000303c0f183196001000668ebe3cb22c0fdf8f800";
constexpr std::string_view kAsc48kStereo = "1190";
constexpr std::string_view kHvcc1080p =
    "01016000000090000000000078f000fcfdf8f800000f03a00001001840010c01ffff01600000030090000003000003007895"
    "9809a10001002a420101016000000300900000030000030078a003c08010e596566924caf01680800000030080000"
    "00f04a2000100074401c172b46240";
constexpr std::string_view kAv1c = "81010c000a0b0000000cc4ff6700be0010";

// Big-endian box builder for crafted inputs (independent of the writer under src/).
class Builder {
 public:
  Builder& u8(std::uint32_t v) { return put(v, 1); }
  Builder& u16(std::uint32_t v) { return put(v, 2); }
  Builder& u24(std::uint32_t v) { return put(v, 3); }
  Builder& u32(std::uint32_t v) { return put(v, 4); }
  Builder& u64(std::uint64_t v) { return put(v, 8); }
  Builder& fourcc(std::string_view s) {
    for (char c : s) out_.push_back(static_cast<std::byte>(c));
    return *this;
  }
  Builder& bytes(ByteView b) {
    out_.insert(out_.end(), b.begin(), b.end());
    return *this;
  }
  Builder& zeros(std::size_t n) {
    out_.resize(out_.size() + n);
    return *this;
  }
  std::size_t begin(std::string_view type) {
    const std::size_t at = out_.size();
    u32(0).fourcc(type);
    return at;
  }
  std::size_t begin_full(std::string_view type, std::uint8_t version, std::uint32_t flags) {
    const std::size_t at = begin(type);
    u8(version).u24(flags);
    return at;
  }
  void end(std::size_t at) { patch_u32(at, static_cast<std::uint32_t>(out_.size() - at)); }
  void patch_u32(std::size_t at, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) out_[at + i] = static_cast<std::byte>(v >> (24 - 8 * i));
  }
  std::size_t size() const { return out_.size(); }
  Bytes take() const { return Bytes::copy_of(out_); }

 private:
  Builder& put(std::uint64_t v, int n) {
    for (int i = n - 1; i >= 0; --i) out_.push_back(static_cast<std::byte>(v >> (8 * i)));
    return *this;
  }
  std::vector<std::byte> out_;
};

struct TrackSpec {
  std::uint32_t track_id = 1;
  std::string handler = "vide";
  std::string entry = "avc1";
  std::uint32_t timescale = 90000;  // mdhd
  Bytes record = hex(kAvcc720p);    // avcC/hvcC/av1C body, or the AudioSpecificConfig
  std::uint8_t object_type = 0x40;  // esds objectTypeIndication
  std::uint16_t width = 1280;       // VisualSampleEntry
  std::uint16_t height = 720;
  std::uint8_t box_version = 0;     // tkhd and mdhd
  std::uint16_t audio_version = 0;  // QuickTime sound description version
  std::uint32_t trex_duration = 0;
  std::uint32_t trex_size = 0;
  std::uint32_t trex_flags = 0;
  struct Edit {
    std::uint64_t duration = 0;   // movie timescale
    std::int64_t media_time = 0;  // media timescale; -1: an empty edit
  };
  std::vector<Edit> edits;  // an edts/elst when not empty
  std::uint8_t elst_version = 0;
};

std::string_view config_box(std::string_view entry) {
  if (entry == "avc1" || entry == "avc3") return "avcC";
  if (entry == "hvc1" || entry == "hev1") return "hvcC";
  if (entry == "av01") return "av1C";
  return "zzzz";
}

void descriptor(Builder& b, std::uint8_t tag, std::size_t size) {
  b.u8(tag).u8(static_cast<std::uint8_t>(size));  // one-byte size form
}

void trak(Builder& b, const TrackSpec& t) {
  const auto trak = b.begin("trak");
  const auto tkhd = b.begin_full("tkhd", t.box_version, 3);
  b.zeros(t.box_version == 1 ? 16 : 8).u32(t.track_id).zeros(t.box_version == 1 ? 64 : 60);
  b.end(tkhd);
  if (!t.edits.empty()) {
    const auto edts = b.begin("edts");
    const auto elst = b.begin_full("elst", t.elst_version, 0);
    b.u32(static_cast<std::uint32_t>(t.edits.size()));
    for (const auto& e : t.edits) {
      if (t.elst_version == 1)
        b.u64(e.duration).u64(static_cast<std::uint64_t>(e.media_time));
      else
        b.u32(static_cast<std::uint32_t>(e.duration)).u32(static_cast<std::uint32_t>(e.media_time));
      b.u16(1).u16(0);
    }
    b.end(elst);
    b.end(edts);
  }
  const auto mdia = b.begin("mdia");
  const auto mdhd = b.begin_full("mdhd", t.box_version, 0);
  b.zeros(t.box_version == 1 ? 16 : 8).u32(t.timescale).zeros(t.box_version == 1 ? 8 : 4).u16(0x55C4).u16(0);
  b.end(mdhd);
  const auto hdlr = b.begin_full("hdlr", 0, 0);
  b.u32(0).fourcc(t.handler).zeros(12).u8(0);
  b.end(hdlr);
  const auto minf = b.begin("minf");
  const auto stbl = b.begin("stbl");
  const auto stsd = b.begin_full("stsd", 0, 0);
  b.u32(1);
  const auto entry = b.begin(t.entry);
  if (t.handler == "vide") {
    b.zeros(6).u16(1).zeros(16).u16(t.width).u16(t.height).u32(0x00480000).u32(0x00480000).u32(0).u16(1);
    b.zeros(32).u16(0x18).u16(0xFFFF);
    const auto config = b.begin(config_box(t.entry));
    b.bytes(t.record);
    b.end(config);
  } else {
    b.zeros(6).u16(1).u16(t.audio_version).zeros(6).u16(2).u16(16).zeros(4).u32(48000u << 16);
    if (t.audio_version == 1) b.zeros(16);
    const auto esds = b.begin_full("esds", 0, 0);
    const std::size_t dsi = 2 + t.record.size();
    const std::size_t dcd = 2 + 13 + dsi;
    descriptor(b, 0x03, 3 + dcd + 3);
    b.u16(0).u8(0);
    descriptor(b, 0x04, 13 + dsi);
    b.u8(t.object_type).u8(0x15).u24(0).u32(0).u32(0);
    descriptor(b, 0x05, t.record.size());
    b.bytes(t.record);
    descriptor(b, 0x06, 1);
    b.u8(2);
    b.end(esds);
  }
  b.end(entry);
  b.end(stsd);
  b.end(stbl);
  b.end(minf);
  b.end(mdia);
  b.end(trak);
}

Bytes init_bytes(const std::vector<TrackSpec>& tracks) {
  Builder b;
  const auto ftyp = b.begin("ftyp");
  b.fourcc("iso6").u32(0).fourcc("iso6").fourcc("cmfc");
  b.end(ftyp);
  const auto moov = b.begin("moov");
  const auto mvhd = b.begin_full("mvhd", 0, 0);
  b.zeros(8).u32(1000).u32(0).zeros(80).u32(100);  // movie timescale 1000; next_track_ID
  b.end(mvhd);
  for (const auto& t : tracks) trak(b, t);
  const auto mvex = b.begin("mvex");
  for (const auto& t : tracks) {
    const auto trex = b.begin_full("trex", 0, 0);
    b.u32(t.track_id).u32(1).u32(t.trex_duration).u32(t.trex_size).u32(t.trex_flags);
    b.end(trex);
  }
  b.end(mvex);
  b.end(moov);
  return b.take();
}

InitSegment init_of(const std::vector<TrackSpec>& tracks) {
  auto init = parse_init_segment(init_bytes(tracks));
  EXPECT_TRUE(init.has_value()) << init.error().message();
  return init ? *init : InitSegment{};
}

constexpr std::uint32_t kSync = 0x02000000;
constexpr std::uint32_t kNonSync = 0x01010000;

struct Sample {
  std::uint32_t duration = 0;
  std::uint32_t size = 0;
  std::uint32_t flags = 0;
  std::int32_t composition = 0;
};

struct TrafSpec {
  std::uint32_t track_id = 1;
  std::uint32_t tfhd_flags = 0x020000;  // default-base-is-moof
  std::uint64_t base_data_offset = 0;
  std::uint32_t default_duration = 0;
  std::uint32_t default_size = 0;
  std::uint32_t default_flags = 0;
  std::optional<std::uint64_t> tfdt = 0;
  std::uint8_t tfdt_version = 1;
  std::uint8_t trun_version = 1;
  std::uint32_t trun_flags = 0xF01;  // data_offset, duration, size, flags, composition offset
  std::uint32_t first_sample_flags = 0;
  std::optional<std::uint32_t> sample_count;  // overrides samples.size() in the trun
  std::int64_t data_offset_adjust = 0;        // added to the computed data_offset
  std::vector<Sample> samples;
};

// moof{mfhd, traf...} mdat; sample i of traf k is filled with byte (16 * k + i). data_offset
// points at each traf's first sample (from the moof start).
Bytes fragment(const std::vector<TrafSpec>& trafs, bool large_mdat = false) {
  Builder b;
  std::vector<std::size_t> offset_fields;
  const auto moof = b.begin("moof");
  const auto mfhd = b.begin_full("mfhd", 0, 0);
  b.u32(1);
  b.end(mfhd);
  for (const auto& t : trafs) {
    const auto traf = b.begin("traf");
    const auto tfhd = b.begin_full("tfhd", 0, t.tfhd_flags);
    b.u32(t.track_id);
    if (t.tfhd_flags & 0x01) b.u64(t.base_data_offset);
    if (t.tfhd_flags & 0x02) b.u32(1);
    if (t.tfhd_flags & 0x08) b.u32(t.default_duration);
    if (t.tfhd_flags & 0x10) b.u32(t.default_size);
    if (t.tfhd_flags & 0x20) b.u32(t.default_flags);
    b.end(tfhd);
    if (t.tfdt) {
      const auto tfdt = b.begin_full("tfdt", t.tfdt_version, 0);
      if (t.tfdt_version == 1) {
        b.u64(*t.tfdt);
      } else {
        b.u32(static_cast<std::uint32_t>(*t.tfdt));
      }
      b.end(tfdt);
    }
    const auto trun = b.begin_full("trun", t.trun_version, t.trun_flags);
    b.u32(t.sample_count.value_or(static_cast<std::uint32_t>(t.samples.size())));
    offset_fields.push_back(t.trun_flags & 0x001 ? b.size() : 0);
    if (t.trun_flags & 0x001) b.u32(0);
    if (t.trun_flags & 0x004) b.u32(t.first_sample_flags);
    for (const auto& s : t.samples) {
      if (t.trun_flags & 0x100) b.u32(s.duration);
      if (t.trun_flags & 0x200) b.u32(s.size);
      if (t.trun_flags & 0x400) b.u32(s.flags);
      if (t.trun_flags & 0x800) b.u32(static_cast<std::uint32_t>(s.composition));
    }
    b.end(trun);
    b.end(traf);
  }
  b.end(moof);
  const std::size_t moof_size = b.size();
  std::size_t payload = 0;
  for (const auto& t : trafs) {
    for (const auto& s : t.samples) payload += s.size;
  }
  const std::size_t mdat_header = large_mdat ? 16 : 8;
  std::size_t data_at = moof_size + mdat_header;
  for (std::size_t k = 0; k < trafs.size(); ++k) {
    if (offset_fields[k]) {
      b.patch_u32(offset_fields[k], static_cast<std::uint32_t>(data_at + trafs[k].data_offset_adjust));
    }
    for (const auto& s : trafs[k].samples) data_at += s.size;
  }
  if (large_mdat) {
    b.u32(1).fourcc("mdat").u64(payload + 16);
  } else {
    b.u32(static_cast<std::uint32_t>(payload + 8)).fourcc("mdat");
  }
  for (std::size_t k = 0; k < trafs.size(); ++k) {
    for (std::size_t i = 0; i < trafs[k].samples.size(); ++i) {
      for (std::uint32_t n = 0; n < trafs[k].samples[i].size; ++n) b.u8(static_cast<std::uint8_t>(16 * k + i));
    }
  }
  return b.take();
}

bool inside(const Bytes& slice, const Bytes& buffer) {
  return slice.data() >= buffer.data() && slice.data() + slice.size() <= buffer.data() + buffer.size();
}

Bytes concat(std::initializer_list<ByteView> parts) {
  std::vector<std::byte> v;
  for (ByteView p : parts) v.insert(v.end(), p.begin(), p.end());
  return Bytes::copy_of(v);
}

// ---- real ffmpeg output ----

struct Command {
  int status;
  std::string output;
};

Command run(const std::string& cmd) {
  Command result{-1, {}};
  FILE* pipe = ::popen(cmd.c_str(), "r");
  if (!pipe) return result;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) result.output.append(buf, n);
  result.status = ::pclose(pipe);
  return result;
}

Bytes read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> v((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return Bytes::copy_of(as_bytes(std::string_view(v.data(), v.size())));
}

void write_file(const fs::path& path, ByteView data) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
}

struct Packet {
  std::int64_t pts = 0;
  std::int64_t dts = 0;
  std::size_t size = 0;
  bool keyframe = false;
};

struct ProbedStream {
  std::string codec_type;
  std::uint32_t timescale = 0;  // time_base denominator = the mdhd timescale
  std::vector<Packet> packets;
};

// Edit lists ignored: the parser reports media time as the fragments carry it.
std::vector<ProbedStream> ffprobe(const fs::path& path) {
  const Command c =
      run("ffprobe -v error -ignore_editlist 1 -show_streams -show_packets -of json '" + path.string() + "'");
  std::vector<ProbedStream> streams;
  if (c.status != 0) return streams;
  const auto doc = nlohmann::json::parse(c.output, nullptr, false);
  if (doc.is_discarded()) return streams;
  for (const auto& s : doc["streams"]) {
    ProbedStream p;
    p.codec_type = s["codec_type"];
    const std::string tb = s["time_base"];
    p.timescale = static_cast<std::uint32_t>(std::stoul(tb.substr(tb.find('/') + 1)));
    streams.push_back(p);
  }
  for (const auto& pk : doc["packets"]) {
    const std::size_t index = pk["stream_index"];
    if (index >= streams.size()) continue;
    Packet p;
    p.pts = pk["pts"];
    p.dts = pk["dts"];
    p.size = std::stoul(pk["size"].get<std::string>());
    p.keyframe = pk["flags"].get<std::string>().find('K') != std::string::npos;
    streams[index].packets.push_back(p);
  }
  return streams;
}

std::int64_t rescaled(std::int64_t v, std::uint32_t from, std::uint32_t to) {
  return std::llround(static_cast<long double>(v) * to / from);
}

// Frame i of `frames` against packet i of `probed`: timestamps, size and keyframe flag.
void expect_matches(const std::vector<MediaFrame>& frames, const ProbedStream& probed, const TrackConfig& track) {
  ASSERT_EQ(frames.size(), probed.packets.size());
  for (std::size_t i = 0; i < frames.size(); ++i) {
    const Packet& p = probed.packets[i];
    SCOPED_TRACE(testing::Message() << "frame " << i);
    EXPECT_EQ(frames[i].dts, rescaled(p.dts, probed.timescale, track.timescale));
    EXPECT_EQ(frames[i].pts, rescaled(p.pts, probed.timescale, track.timescale));
    EXPECT_EQ(frames[i].data.size(), p.size);
    EXPECT_EQ(frames[i].keyframe, p.keyframe);
    EXPECT_EQ(frames[i].track_id, track.track_id);
    EXPECT_EQ(frames[i].codec, track.codec);
    EXPECT_EQ(frames[i].type, track.type);
  }
}

std::vector<MediaFrame> of_track(const std::vector<MediaFrame>& frames, std::uint32_t track_id) {
  std::vector<MediaFrame> out;
  for (const auto& f : frames) {
    if (f.track_id == track_id) out.push_back(f);
  }
  return out;
}

class DemuxFromFfmpeg : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (run("command -v ffmpeg && command -v ffprobe").status != 0) {
      missing_tools_ = true;
      return;
    }
    char pattern[] = "/tmp/sf_cmaf_demux_XXXXXX";
    if (!::mkdtemp(pattern)) {
      setup_error_ = "mkdtemp failed";
      return;
    }
    dir_ = pattern;
    fs::create_directories(dir_ / "dash");
    const std::string source =
        "ffmpeg -nostdin -v error -f lavfi -i testsrc2=size=640x360:rate=30 -f lavfi -i sine -t 4 "
        "-c:v libx264 -g 30 -bf 2 -c:a aac ";
    const Command dash = run(source + "-f dash -seg_duration 1 -use_template 1 -use_timeline 0 '" +
                             (dir_ / "dash" / "out.mpd").string() + "' 2>&1");
    const Command mp4 = run(source + "-f mp4 -movflags +frag_keyframe+empty_moov+default_base_moof '" +
                            (dir_ / "frag.mp4").string() + "' 2>&1");
    if (dash.status != 0 || mp4.status != 0) setup_error_ = "ffmpeg failed: " + dash.output + mp4.output;
  }
  static void TearDownTestSuite() {
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  void SetUp() override {
    if (missing_tools_) GTEST_SKIP() << "ffmpeg/ffprobe not installed";
    ASSERT_TRUE(setup_error_.empty()) << setup_error_;
  }

  static fs::path dash(const std::string& name) { return dir_ / "dash" / name; }
  static std::vector<fs::path> chunks(int stream) {
    std::vector<fs::path> out;
    const std::string prefix = "chunk-stream" + std::to_string(stream) + "-";
    for (const auto& e : fs::directory_iterator(dir_ / "dash")) {
      if (e.path().filename().string().starts_with(prefix)) out.push_back(e.path());
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  // Parses DASH stream `stream`'s init and each chunk file; compares with ffprobe of the init
  // followed by every chunk.
  static void check_dash_stream(int stream) {
    const Bytes init_file = read_file(dash("init-stream" + std::to_string(stream) + ".m4s"));
    auto init = parse_init_segment(init_file);
    ASSERT_TRUE(init) << init.error().message();
    ASSERT_EQ(init->tracks.size(), 1u);
    const TrackConfig& track = init->tracks[0];

    std::vector<std::byte> joined(init_file.view().begin(), init_file.view().end());
    std::vector<MediaFrame> frames;
    const auto files = chunks(stream);
    ASSERT_GE(files.size(), 4u);
    for (const auto& path : files) {
      const Bytes chunk = read_file(path);
      joined.insert(joined.end(), chunk.view().begin(), chunk.view().end());
      auto parsed = parse_fragments(chunk, *init);
      ASSERT_TRUE(parsed) << path << ": " << parsed.error().message();
      for (auto& f : *parsed) {
        EXPECT_TRUE(inside(f.data, chunk));
        frames.push_back(std::move(f));
      }
    }
    const fs::path whole = dir_ / ("joined" + std::to_string(stream) + ".mp4");
    write_file(whole, joined);
    const auto probed = ffprobe(whole);
    ASSERT_EQ(probed.size(), 1u);
    expect_matches(frames, probed[0], track);
  }

  static inline fs::path dir_;
  static inline std::string setup_error_;
  static inline bool missing_tools_ = false;
};

TEST_F(DemuxFromFfmpeg, DashVideoInitGivesH264TrackWithItsAvcc) {
  const Bytes data = read_file(dash("init-stream0.m4s"));
  auto init = parse_init_segment(data);
  ASSERT_TRUE(init) << init.error().message();
  ASSERT_EQ(init->tracks.size(), 1u);
  const TrackConfig& t = init->tracks[0];
  EXPECT_EQ(t.track_id, 1u);
  EXPECT_EQ(t.type, MediaType::video);
  EXPECT_EQ(t.codec, Codec::h264);
  EXPECT_EQ(t.timescale, 90000u);
  EXPECT_EQ(t.version, 1u);
  ASSERT_TRUE(t.video);
  EXPECT_EQ(t.video->codec_string, "avc1.64001e");
  EXPECT_EQ(t.video->width, 640u);
  EXPECT_EQ(t.video->height, 360u);
  EXPECT_TRUE(inside(t.record, data));
  EXPECT_EQ(std::to_integer<int>(t.record.view()[0]), 1);  // configurationVersion: the avcC body
}

TEST_F(DemuxFromFfmpeg, DashInitsCarryTheirEditListsAsPresentationOffsets) {
  // ffmpeg's edit lists: video starts after its B-frame delay (2 frames at -bf 2, 30 fps), AAC
  // after its 1024 priming samples.
  auto video = parse_init_segment(read_file(dash("init-stream0.m4s")));
  auto audio = parse_init_segment(read_file(dash("init-stream1.m4s")));
  ASSERT_TRUE(video && audio);
  ASSERT_EQ(video->presentation_offsets.size(), 1u);
  EXPECT_EQ(video->presentation_offsets[0], -6000);  // 2 frames at 90 kHz
  ASSERT_EQ(audio->presentation_offsets.size(), 1u);
  EXPECT_EQ(audio->presentation_offsets[0], -1024);  // in samples: the track timescale is the rate
}

TEST_F(DemuxFromFfmpeg, DashAudioInitGivesAacTrackAtItsSampleRate) {
  const Bytes data = read_file(dash("init-stream1.m4s"));
  auto init = parse_init_segment(data);
  ASSERT_TRUE(init) << init.error().message();
  ASSERT_EQ(init->tracks.size(), 1u);
  const TrackConfig& t = init->tracks[0];
  EXPECT_EQ(t.type, MediaType::audio);
  EXPECT_EQ(t.codec, Codec::aac);
  ASSERT_TRUE(t.audio);
  EXPECT_EQ(t.audio->codec_string, "mp4a.40.2");
  EXPECT_TRUE(t.audio->sample_rate == 44100 || t.audio->sample_rate == 48000) << t.audio->sample_rate;
  EXPECT_EQ(t.timescale, t.audio->sample_rate);
  EXPECT_TRUE(inside(t.record, data));
}

TEST_F(DemuxFromFfmpeg, DashVideoChunksMatchFfprobePackets) {
  check_dash_stream(0);
}

TEST_F(DemuxFromFfmpeg, DashAudioChunksMatchFfprobePackets) {
  check_dash_stream(1);
}

TEST_F(DemuxFromFfmpeg, FragmentedMp4MatchesFfprobePacketsPerTrack) {
  const Bytes file = read_file(dir_ / "frag.mp4");
  auto init = parse_init_segment(file);  // moov is found among the fragments
  ASSERT_TRUE(init) << init.error().message();
  ASSERT_EQ(init->tracks.size(), 2u);
  auto frames = parse_fragments(file, *init);  // ftyp and moov are skipped
  ASSERT_TRUE(frames) << frames.error().message();
  const auto probed = ffprobe(dir_ / "frag.mp4");
  ASSERT_EQ(probed.size(), 2u);
  for (std::size_t i = 0; i < 2; ++i) {
    const TrackConfig& track = init->tracks[i];
    EXPECT_EQ(probed[i].codec_type, track.type == MediaType::video ? "video" : "audio");
    expect_matches(of_track(*frames, track.track_id), probed[i], track);
  }
}

TEST_F(DemuxFromFfmpeg, FramesShareTheInputBlock) {
  const Bytes file = read_file(dir_ / "frag.mp4");
  auto init = parse_init_segment(file);
  ASSERT_TRUE(init);
  const long before = file.use_count();
  auto frames = parse_fragments(file, *init);
  ASSERT_TRUE(frames);
  ASSERT_FALSE(frames->empty());
  for (const auto& f : *frames) ASSERT_TRUE(inside(f.data, file));
  EXPECT_EQ(file.use_count(), before + static_cast<long>(frames->size()));
}

TEST_F(DemuxFromFfmpeg, EveryTruncationOfARealFragmentFails) {
  auto init = parse_init_segment(read_file(dash("init-stream1.m4s")));
  ASSERT_TRUE(init);
  const Bytes chunk = read_file(chunks(1).front());
  // From the moof on: styp and sidx alone would be a valid (empty) box sequence.
  const std::string_view text = as_chars(chunk);
  const std::size_t moof = text.find("moof");
  ASSERT_NE(moof, std::string_view::npos);
  const Bytes fragment = chunk.share_from(moof - 4);
  ASSERT_TRUE(parse_fragments(fragment, *init));
  for (std::size_t n = 1; n < fragment.size(); ++n) {
    const Bytes cut = Bytes::copy_of(fragment.view().first(n));  // exact size: ASan sees overreads
    EXPECT_FALSE(parse_fragments(cut, *init)) << "prefix of " << n << " bytes";
  }
}

TEST_F(DemuxFromFfmpeg, EveryTruncationOfARealInitFails) {
  const Bytes data = read_file(dash("init-stream0.m4s"));
  for (std::size_t n = 0; n < data.size(); ++n) {
    const Bytes cut = Bytes::copy_of(data.view().first(n));
    EXPECT_FALSE(parse_init_segment(cut)) << "prefix of " << n << " bytes";
  }
}

// ---- round trip with the project's writer ----

Bytes flatten(const Chunk& chunk) {
  std::vector<std::byte> v(chunk.header.view().begin(), chunk.header.view().end());
  for (const Bytes& p : chunk.payload) v.insert(v.end(), p.view().begin(), p.view().end());
  return Bytes::copy_of(v);
}

void expect_round_trip(const TrackConfig& track, const std::vector<MediaFrame>& frames, std::int64_t next_dts) {
  auto written_init = write_init_segment(track);
  ASSERT_TRUE(written_init) << written_init.error().message();
  auto init = parse_init_segment(*written_init);
  ASSERT_TRUE(init) << init.error().message();
  ASSERT_EQ(init->tracks.size(), 1u);
  const TrackConfig& parsed = init->tracks[0];
  EXPECT_EQ(parsed.track_id, track.track_id);
  EXPECT_EQ(parsed.codec, track.codec);
  EXPECT_EQ(parsed.timescale, track.timescale);
  EXPECT_TRUE(std::ranges::equal(parsed.record.view(), track.record.view()));

  const Bytes chunk = flatten(write_chunk(track, 7, frames, next_dts, true));
  auto out = parse_fragments(chunk, *init);
  ASSERT_TRUE(out) << out.error().message();
  ASSERT_EQ(out->size(), frames.size());
  for (std::size_t i = 0; i < frames.size(); ++i) {
    SCOPED_TRACE(testing::Message() << "frame " << i);
    EXPECT_EQ((*out)[i].dts, frames[i].dts);
    EXPECT_EQ((*out)[i].pts, frames[i].pts);
    EXPECT_EQ((*out)[i].keyframe, frames[i].keyframe);
    EXPECT_EQ((*out)[i].track_id, track.track_id);
    EXPECT_TRUE(std::ranges::equal((*out)[i].data.view(), frames[i].data.view()));
  }
}

TEST_F(DemuxFromFfmpeg, WriterRoundTripKeepsVideoFrames) {
  auto init = parse_init_segment(read_file(dash("init-stream0.m4s")));
  ASSERT_TRUE(init);
  auto frames = parse_fragments(read_file(chunks(0)[1]), *init);
  ASSERT_TRUE(frames);
  ASSERT_TRUE(std::ranges::any_of(*frames, [](const MediaFrame& f) { return f.pts != f.dts; }));
  expect_round_trip(init->tracks[0], *frames, frames->back().dts + 3000);
}

TEST_F(DemuxFromFfmpeg, WriterRoundTripKeepsAudioFrames) {
  auto init = parse_init_segment(read_file(dash("init-stream1.m4s")));
  ASSERT_TRUE(init);
  auto frames = parse_fragments(read_file(chunks(1)[1]), *init);
  ASSERT_TRUE(frames);
  expect_round_trip(init->tracks[0], *frames, frames->back().dts + 1024);
}

TrackConfig video_track(Codec codec, std::string_view record_hex) {
  TrackConfig t;
  t.track_id = 3;
  t.type = MediaType::video;
  t.codec = codec;
  t.record = hex(record_hex);
  auto cfg = codec == Codec::hevc  ? media::parse_hvcc(t.record)
             : codec == Codec::av1 ? media::parse_av1c(t.record)
                                   : media::parse_avcc(t.record);
  EXPECT_TRUE(cfg);
  if (cfg) t.video = *cfg;
  return t;
}

std::vector<MediaFrame> synthetic_frames(const TrackConfig& track, int count) {
  std::vector<MediaFrame> frames;
  for (int i = 0; i < count; ++i) {
    MediaFrame f;
    f.track_id = track.track_id;
    f.type = track.type;
    f.codec = track.codec;
    f.dts = 1'000'000 + 3000 * i;
    f.pts = f.dts + (i % 3) * 3000;
    f.keyframe = i == 0;
    const std::string payload(static_cast<std::size_t>(10 + i), static_cast<char>('a' + i));
    f.data = Bytes::copy_of(as_bytes(payload));
    frames.push_back(f);
  }
  return frames;
}

TEST(DemuxWriterRoundTrip, HevcTrackAndFrames) {
  const TrackConfig track = video_track(Codec::hevc, kHvcc1080p);
  expect_round_trip(track, synthetic_frames(track, 5), 1'000'000 + 15000);
  auto init = parse_init_segment(*write_init_segment(track));
  ASSERT_TRUE(init);
  ASSERT_TRUE(init->tracks[0].video);
  EXPECT_EQ(init->tracks[0].video->codec_string, track.video->codec_string);
  EXPECT_EQ(init->tracks[0].video->width, 1920u);
}

TEST(DemuxWriterRoundTrip, DeclaredBandwidthTravelsInBtrt) {
  TrackConfig track = video_track(Codec::hevc, kHvcc1080p);
  auto plain = parse_init_segment(*write_init_segment(track));
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->tracks[0].bandwidth, 0u);  // no btrt written without a declared rate
  track.bandwidth = 2'640'000;
  auto init = parse_init_segment(*write_init_segment(track));
  ASSERT_TRUE(init) << init.error().message();
  EXPECT_EQ(init->tracks[0].bandwidth, 2'640'000u);
  EXPECT_EQ(init->tracks[0].video->width, 1920u);  // the configuration record still found
}

TEST(DemuxWriterRoundTrip, Av1TrackAndFrames) {
  const TrackConfig track = video_track(Codec::av1, kAv1c);
  expect_round_trip(track, synthetic_frames(track, 4), 1'000'000 + 12000);
}

// ---- init segments, crafted ----

Bytes with_u32_at(const Bytes& in, std::size_t at, std::uint32_t v) {
  std::vector<std::byte> out(in.view().begin(), in.view().end());
  for (int i = 0; i < 4; ++i) out[at + i] = static_cast<std::byte>(v >> (24 - 8 * i));
  return Bytes::copy_of(out);
}

TEST(DemuxInit, ReadsTrackIdsTimescalesAndRecordsOfEachTrack) {
  TrackSpec video;
  video.track_id = 5;
  TrackSpec audio;
  audio.track_id = 9;
  audio.handler = "soun";
  audio.entry = "mp4a";
  audio.record = hex(kAsc48kStereo);
  audio.timescale = 48000;
  auto init = parse_init_segment(init_bytes({video, audio}));
  ASSERT_TRUE(init) << init.error().message();
  ASSERT_EQ(init->tracks.size(), 2u);
  EXPECT_EQ(init->tracks[0].track_id, 5u);
  EXPECT_EQ(init->tracks[0].timescale, 90000u);
  ASSERT_TRUE(init->tracks[0].video);
  EXPECT_EQ(init->tracks[0].video->width, 1280u);
  EXPECT_EQ(init->tracks[1].track_id, 9u);
  EXPECT_EQ(init->tracks[1].timescale, 48000u);
  ASSERT_TRUE(init->tracks[1].audio);
  EXPECT_EQ(init->tracks[1].audio->channels, 2);
  EXPECT_TRUE(std::ranges::equal(init->tracks[1].record.view(), hex(kAsc48kStereo).view()));
}

TEST(DemuxInit, ReadsVersion1HeadersAndQuickTimeSoundDescription) {
  TrackSpec video;
  video.box_version = 1;
  video.track_id = 2;
  TrackSpec audio;
  audio.track_id = 4;
  audio.handler = "soun";
  audio.entry = "mp4a";
  audio.record = hex(kAsc48kStereo);
  audio.audio_version = 1;
  audio.box_version = 1;
  auto init = parse_init_segment(init_bytes({video, audio}));
  ASSERT_TRUE(init) << init.error().message();
  ASSERT_EQ(init->tracks.size(), 2u);
  EXPECT_EQ(init->tracks[0].track_id, 2u);
  EXPECT_EQ(init->tracks[1].track_id, 4u);
  EXPECT_EQ(init->tracks[1].codec, Codec::aac);
}

TEST(DemuxInit, Avc3WithoutParameterSetsTakesSizeFromTheSampleEntry) {
  TrackSpec t;
  t.entry = "avc3";
  t.record =
      hex("0164001fff"
          "e0"
          "00");  // no SPS, no PPS: they travel in-band
  t.width = 320;
  t.height = 240;
  auto init = parse_init_segment(init_bytes({t}));
  ASSERT_TRUE(init) << init.error().message();
  ASSERT_TRUE(init->tracks[0].video);
  EXPECT_EQ(init->tracks[0].codec, Codec::h264);
  EXPECT_EQ(init->tracks[0].video->width, 320u);
  EXPECT_EQ(init->tracks[0].video->height, 240u);
}

TEST(DemuxInit, SkipsUnsupportedTracksAndKeepsTheOthers) {
  TrackSpec encrypted;
  encrypted.track_id = 1;
  encrypted.entry = "encv";
  TrackSpec meta;
  meta.track_id = 2;
  meta.handler = "meta";
  TrackSpec mp3;
  mp3.track_id = 3;
  mp3.handler = "soun";
  mp3.entry = "mp4a";
  mp3.object_type = 0x6B;
  mp3.record = hex("00");
  TrackSpec hevc;
  hevc.track_id = 4;
  hevc.entry = "hev1";
  hevc.record = hex(kHvcc1080p);
  auto init = parse_init_segment(init_bytes({encrypted, meta, mp3, hevc}));
  ASSERT_TRUE(init) << init.error().message();
  ASSERT_EQ(init->tracks.size(), 1u);
  EXPECT_EQ(init->tracks[0].track_id, 4u);
  EXPECT_EQ(init->tracks[0].codec, Codec::hevc);
}

TEST(DemuxInit, WithoutAnEditListTheOffsetIsZero) {
  auto init = parse_init_segment(init_bytes({TrackSpec{}}));
  ASSERT_TRUE(init) << init.error().message();
  EXPECT_EQ(init->presentation_offsets, std::vector<std::int64_t>{0});
}

TEST(DemuxInit, EditListsGiveOffsetsInTheTrackTimescale) {
  TrackSpec video;  // mdhd 90 kHz: the first edit starts at media time 3000 (one frame at 30 fps)
  video.edits = {{0, 3000}};
  TrackSpec audio;  // 48 kHz; an empty edit of 250 ms (movie timescale 1000), then 2048 samples in
  audio.track_id = 2;
  audio.handler = "soun";
  audio.entry = "mp4a";
  audio.record = hex(kAsc48kStereo);
  audio.timescale = 48000;
  audio.edits = {{250, -1}, {0, 2048}};
  audio.elst_version = 1;
  auto init = parse_init_segment(init_bytes({video, audio}));
  ASSERT_TRUE(init) << init.error().message();
  EXPECT_EQ(init->presentation_offsets, (std::vector<std::int64_t>{-3000, 12000 - 2048}));
}

TEST(DemuxInit, EditListMediaTimeInAnotherTimescaleIsRescaled) {
  TrackSpec video;
  video.timescale = 15360;  // ffmpeg's video timescale: 1024 ticks = 2 frames at 30 fps
  video.edits = {{0, 1024}};
  auto init = parse_init_segment(init_bytes({video}));
  ASSERT_TRUE(init) << init.error().message();
  EXPECT_EQ(init->tracks[0].timescale, 90000u);
  EXPECT_EQ(init->presentation_offsets, std::vector<std::int64_t>{-6000});
}

TEST(DemuxInit, EditsBeyondASecondAreNotHonoured) {
  TrackSpec video;
  video.edits = {{0, 90000 * 10}};  // starts 10 s into the media: not priming, not reordering
  auto init = parse_init_segment(init_bytes({video}));
  ASSERT_TRUE(init) << init.error().message();
  EXPECT_EQ(init->presentation_offsets, std::vector<std::int64_t>{0});
}

TEST(DemuxInit, EditListCountBeyondItsBoxIsMalformed) {
  TrackSpec video;
  video.edits = {{0, 3000}};
  Bytes data = init_bytes({video});
  const auto view = data.view();
  const std::string_view text(reinterpret_cast<const char*>(view.data()), view.size());
  const auto at = text.find("elst");
  ASSERT_NE(at, std::string_view::npos);
  auto init = parse_init_segment(with_u32_at(data, at + 8, 0x10000000));  // entry_count
  ASSERT_FALSE(init);
  EXPECT_EQ(init.error(), errc::malformed);
}

TEST(DemuxInit, NoSupportedTrackIsUnsupported) {
  TrackSpec t;
  t.entry = "vp09";
  EXPECT_EQ(parse_init_segment(init_bytes({t})).error(), errc::unsupported);
}

TEST(DemuxInit, MissingMoovIsMalformed) {
  Builder b;
  const auto ftyp = b.begin("ftyp");
  b.fourcc("iso6").u32(0);
  b.end(ftyp);
  EXPECT_EQ(parse_init_segment(b.take()).error(), errc::malformed);
}

TEST(DemuxInit, BrokenConfigurationRecordIsAnError) {
  TrackSpec t;
  t.record = hex("02640");  // configurationVersion 2, truncated
  EXPECT_FALSE(parse_init_segment(init_bytes({t})));
}

TEST(DemuxInit, DuplicateTrackIdsAreMalformed) {
  EXPECT_EQ(parse_init_segment(init_bytes({TrackSpec{}, TrackSpec{}})).error(), errc::malformed);
}

TEST(DemuxInit, MoreThan256SupportedTracksIsRefused) {
  std::vector<TrackSpec> tracks(257);
  for (std::size_t i = 0; i < tracks.size(); ++i) tracks[i].track_id = static_cast<std::uint32_t>(i + 1);
  EXPECT_EQ(parse_init_segment(init_bytes(tracks)).error(), errc::limit_exceeded);
  tracks.pop_back();
  EXPECT_TRUE(parse_init_segment(init_bytes(tracks)));
}

// ---- fragments, crafted ----

TEST(DemuxFragments, EmptyInputHasNoFrames) {
  auto frames = parse_fragments(Bytes{}, init_of({TrackSpec{}}));
  ASSERT_TRUE(frames);
  EXPECT_TRUE(frames->empty());
}

TEST(DemuxFragments, TimesComeFromTfdtAndDurationsWithSignedCompositionOffsets) {
  TrafSpec t;
  t.tfdt = 900000;
  t.samples = {{3000, 5, kSync, 3000}, {3000, 6, kNonSync, 9000}, {3000, 7, kNonSync, -3000}};
  const Bytes data = fragment({t});
  auto frames = parse_fragments(data, init_of({TrackSpec{}}));
  ASSERT_TRUE(frames) << frames.error().message();
  ASSERT_EQ(frames->size(), 3u);
  EXPECT_EQ((*frames)[0].dts, 900000);
  EXPECT_EQ((*frames)[0].pts, 903000);
  EXPECT_EQ((*frames)[1].dts, 903000);
  EXPECT_EQ((*frames)[1].pts, 912000);
  EXPECT_EQ((*frames)[2].dts, 906000);
  EXPECT_EQ((*frames)[2].pts, 903000);
  EXPECT_TRUE((*frames)[0].keyframe);
  EXPECT_FALSE((*frames)[1].keyframe);
  EXPECT_EQ((*frames)[1].data.size(), 6u);
  EXPECT_EQ(std::to_integer<int>((*frames)[1].data.view()[0]), 1);
  EXPECT_EQ((*frames)[2].config_version, 1u);
}

TEST(DemuxFragments, Version0TrunOffsetsAreUnsignedAndTfdtVersion0Is32Bit) {
  TrafSpec t;
  t.tfdt = 0xFFFFFFF0;
  t.tfdt_version = 0;
  t.trun_version = 0;
  t.samples = {{10, 1, kSync, -1}};  // 0xFFFFFFFF unsigned
  auto frames = parse_fragments(fragment({t}), init_of({TrackSpec{}}));
  ASSERT_TRUE(frames) << frames.error().message();
  EXPECT_EQ((*frames)[0].dts, 0xFFFFFFF0);
  EXPECT_EQ((*frames)[0].pts, 0xFFFFFFF0 + std::int64_t{0xFFFFFFFF});
}

TEST(DemuxFragments, SampleFieldsFallBackToFirstSampleFlagsThenTfhdThenTrexDefaults) {
  TrackSpec track;
  track.trex_duration = 1500;
  track.trex_size = 4;
  track.trex_flags = kNonSync;
  const InitSegment init = init_of({track});

  TrafSpec from_trex;  // only data_offset in the trun: everything from trex
  from_trex.trun_flags = 0x001;
  from_trex.samples = {{1500, 4, 0, 0}, {1500, 4, 0, 0}};
  auto a = parse_fragments(fragment({from_trex}), init);
  ASSERT_TRUE(a) << a.error().message();
  ASSERT_EQ(a->size(), 2u);
  EXPECT_FALSE((*a)[0].keyframe);
  EXPECT_EQ((*a)[1].dts, 1500);
  EXPECT_EQ((*a)[1].data.size(), 4u);

  TrafSpec from_tfhd = from_trex;  // tfhd defaults win over trex, first_sample_flags over both
  from_tfhd.tfhd_flags |= 0x08 | 0x10 | 0x20;
  from_tfhd.default_duration = 3000;
  from_tfhd.default_size = 2;
  from_tfhd.default_flags = kNonSync;
  from_tfhd.trun_flags = 0x005;
  from_tfhd.first_sample_flags = kSync;
  from_tfhd.samples = {{3000, 2, 0, 0}, {3000, 2, 0, 0}, {3000, 2, 0, 0}};
  auto b = parse_fragments(fragment({from_tfhd}), init);
  ASSERT_TRUE(b) << b.error().message();
  ASSERT_EQ(b->size(), 3u);
  EXPECT_TRUE((*b)[0].keyframe);
  EXPECT_FALSE((*b)[1].keyframe);
  EXPECT_EQ((*b)[2].dts, 6000);
  EXPECT_EQ((*b)[2].data.size(), 2u);
}

TEST(DemuxFragments, AudioFramesAreAlwaysKeyframes) {
  TrackSpec audio;
  audio.handler = "soun";
  audio.entry = "mp4a";
  audio.record = hex(kAsc48kStereo);
  audio.timescale = 48000;
  TrafSpec t;
  t.samples = {{1024, 3, kNonSync, 0}, {1024, 3, kNonSync, 0}};
  auto frames = parse_fragments(fragment({t}), init_of({audio}));
  ASSERT_TRUE(frames) << frames.error().message();
  ASSERT_EQ(frames->size(), 2u);
  EXPECT_TRUE((*frames)[0].keyframe && (*frames)[1].keyframe);
  EXPECT_EQ((*frames)[1].dts, 1024);
  EXPECT_EQ((*frames)[1].type, MediaType::audio);
}

TEST(DemuxFragments, TimesAreRescaledToTheTrackTimescaleRoundingToNearest) {
  TrackSpec video;
  video.timescale = 180000;  // every tick is half a 90 kHz tick
  TrackSpec audio;
  audio.track_id = 2;
  audio.handler = "soun";
  audio.entry = "mp4a";
  audio.record = hex(kAsc48kStereo);  // 48000 Hz
  audio.timescale = 90000;
  TrafSpec v;
  v.tfdt = 3;
  v.samples = {{2, 1, kSync, -6}, {1, 1, kNonSync, 0}};
  TrafSpec a;
  a.track_id = 2;
  a.tfdt = 90000;
  a.samples = {{1, 1, 0, 0}, {1, 1, 0, 0}};
  auto frames = parse_fragments(fragment({v, a}), init_of({video, audio}));
  ASSERT_TRUE(frames) << frames.error().message();
  ASSERT_EQ(frames->size(), 4u);
  EXPECT_EQ((*frames)[0].dts, 2);   // 1.5 rounds away from zero
  EXPECT_EQ((*frames)[0].pts, -2);  // -1.5 as well
  EXPECT_EQ((*frames)[1].dts, 3);   // 5 / 2 = 2.5
  EXPECT_EQ((*frames)[2].dts, 48000);
  EXPECT_EQ((*frames)[3].dts, 48001);  // 0.533 rounds up
}

TEST(DemuxFragments, TrafWithoutTfdtContinuesWhereThePreviousOneEnded) {
  TrafSpec first;
  first.tfdt = 6000;
  first.samples = {{3000, 1, kSync, 0}, {3000, 1, kNonSync, 0}};
  TrafSpec second;
  second.tfdt.reset();
  second.samples = {{3000, 1, kNonSync, 0}};
  const Bytes data = concat({fragment({first}), fragment({second})});
  auto frames = parse_fragments(data, init_of({TrackSpec{}}));
  ASSERT_TRUE(frames) << frames.error().message();
  ASSERT_EQ(frames->size(), 3u);
  EXPECT_EQ((*frames)[2].dts, 12000);
}

TEST(DemuxFragments, TrafOfATrackTheInitDoesNotHoldIsSkipped) {
  TrafSpec other;
  other.track_id = 42;
  other.samples = {{1, 3, 0, 0}};
  TrafSpec mine;
  mine.samples = {{1, 2, kSync, 0}};
  auto frames = parse_fragments(fragment({other, mine}), init_of({TrackSpec{}}));
  ASSERT_TRUE(frames) << frames.error().message();
  ASSERT_EQ(frames->size(), 1u);
  EXPECT_EQ(frames->front().data.size(), 2u);
  EXPECT_EQ(std::to_integer<int>(frames->front().data.view()[0]), 16);  // traf 1, sample 0
}

TEST(DemuxFragments, WithoutBaseFlagsTheSecondTrafContinuesAfterTheFirstTrafsData) {
  TrackSpec audio;
  audio.track_id = 2;
  audio.handler = "soun";
  audio.entry = "mp4a";
  audio.record = hex(kAsc48kStereo);
  TrafSpec v;
  v.tfhd_flags = 0;  // data_offset counts from the moof (14496-12 §8.8.7.1, first traf)
  v.samples = {{1, 3, kSync, 0}, {1, 4, kNonSync, 0}};
  TrafSpec a;
  a.track_id = 2;
  a.tfhd_flags = 0;
  a.trun_flags = 0x300;  // no data_offset: right after the video data
  a.samples = {{1024, 5, 0, 0}};
  auto frames = parse_fragments(fragment({v, a}), init_of({TrackSpec{}, audio}));
  ASSERT_TRUE(frames) << frames.error().message();
  ASSERT_EQ(frames->size(), 3u);
  EXPECT_EQ((*frames)[2].data.size(), 5u);
  EXPECT_EQ(std::to_integer<int>((*frames)[2].data.view()[0]), 16);
}

TEST(DemuxFragments, BaseDataOffsetCountsFromTheStartOfTheInput) {
  const Bytes styp = hex("0000000c7374797069736f36");  // 12 bytes before the moof
  TrafSpec t;
  t.tfhd_flags = 0x01;   // base-data-offset-present
  t.trun_flags = 0xF00;  // no data_offset: samples start at the base
  t.samples = {{1, 4, kSync, 0}};
  const std::size_t fragment_size = fragment({t}).size();  // the base's value does not change it
  t.base_data_offset = styp.size() + fragment_size - 4;
  const Bytes data = concat({styp, fragment({t})});
  auto frames = parse_fragments(data, init_of({TrackSpec{}}));
  ASSERT_TRUE(frames) << frames.error().message();
  ASSERT_EQ(frames->size(), 1u);
  EXPECT_EQ(frames->front().data.data(), data.data() + data.size() - 4);
  t.base_data_offset = data.size() + 1;
  EXPECT_EQ(parse_fragments(concat({styp, fragment({t})}), init_of({TrackSpec{}})).error(), errc::malformed);
}

TEST(DemuxFragments, LargesizeAndSizeZeroMdatAreAccepted) {
  TrafSpec t;
  t.samples = {{1, 4, kSync, 0}, {1, 2, kNonSync, 0}};
  const InitSegment init = init_of({TrackSpec{}});
  auto large = parse_fragments(fragment({t}, true), init);
  ASSERT_TRUE(large) << large.error().message();
  EXPECT_EQ(large->size(), 2u);

  const Bytes original = fragment({t});
  std::vector<std::byte> to_end(original.view().begin(), original.view().end());
  const std::size_t mdat = to_end.size() - 6 - 8;
  std::fill_n(to_end.begin() + static_cast<std::ptrdiff_t>(mdat), 4, std::byte{0});
  auto zero = parse_fragments(Bytes::copy_of(to_end), init);
  ASSERT_TRUE(zero) << zero.error().message();
  EXPECT_EQ(zero->size(), 2u);
}

TEST(DemuxFragments, StypSidxPrftEmsgAndUnknownBoxesAreIgnored) {
  TrafSpec t;
  t.samples = {{1, 4, kSync, 0}};
  Builder b;
  for (std::string_view type : {"styp", "sidx", "prft", "emsg", "free"}) {
    const auto at = b.begin(type);
    b.u32(0);
    b.end(at);
  }
  const Bytes data = concat({b.take(), fragment({t})});
  auto frames = parse_fragments(data, init_of({TrackSpec{}}));
  ASSERT_TRUE(frames) << frames.error().message();
  EXPECT_EQ(frames->size(), 1u);
}

TEST(DemuxFragments, BoxSizesBelowTheHeaderOrPastTheInputAreMalformed) {
  TrafSpec t;
  t.samples = {{1, 4, kSync, 0}};
  const Bytes good = fragment({t});
  const InitSegment init = init_of({TrackSpec{}});
  EXPECT_EQ(parse_fragments(with_u32_at(good, 0, 7), init).error(), errc::malformed);
  EXPECT_EQ(parse_fragments(with_u32_at(good, 0, static_cast<std::uint32_t>(good.size() + 1)), init).error(),
            errc::malformed);
  EXPECT_EQ(parse_fragments(with_u32_at(good, 8, 0), init).error(), errc::malformed);     // nested size 0 (mfhd)
  EXPECT_EQ(parse_fragments(with_u32_at(good, 8, 1000), init).error(), errc::malformed);  // mfhd past moof
  // largesize below its 16-byte header
  Builder b;
  b.u32(1).fourcc("free").u64(15);
  EXPECT_EQ(parse_fragments(b.take(), init).error(), errc::malformed);
  Builder huge;
  huge.u32(1).fourcc("mdat").u64(~std::uint64_t{0});
  EXPECT_EQ(parse_fragments(huge.take(), init).error(), errc::malformed);
}

TEST(DemuxFragments, SampleOutsideTheMdatIsMalformed) {
  const InitSegment init = init_of({TrackSpec{}});
  TrafSpec past_end;
  past_end.samples = {{1, 4, kSync, 0}};
  past_end.data_offset_adjust = 1;
  EXPECT_EQ(parse_fragments(fragment({past_end}), init).error(), errc::malformed);
  TrafSpec into_moof = past_end;
  into_moof.data_offset_adjust = -1;
  EXPECT_EQ(parse_fragments(fragment({into_moof}), init).error(), errc::malformed);
  TrafSpec before_input = past_end;
  before_input.data_offset_adjust = -100000;
  EXPECT_EQ(parse_fragments(fragment({before_input}), init).error(), errc::malformed);
  TrafSpec huge_size;  // default size far past the mdat
  huge_size.tfhd_flags |= 0x10;
  huge_size.default_size = 0xFFFFFFFF;
  huge_size.trun_flags = 0x001;
  huge_size.samples = {{0, 0, 0, 0}};
  EXPECT_EQ(parse_fragments(fragment({huge_size}), init).error(), errc::malformed);
}

TEST(DemuxFragments, SampleCountBeyondTheTrunBodyIsMalformed) {
  TrafSpec t;
  t.samples = {{1, 4, kSync, 0}};
  t.sample_count = 0xFFFFFFFF;
  EXPECT_EQ(parse_fragments(fragment({t}), init_of({TrackSpec{}})).error(), errc::malformed);
}

TEST(DemuxFragments, MoreFramesThanTheLimitIsRefused) {
  TrafSpec t;  // zero-byte samples described by defaults alone: no per-sample bytes to bound them
  t.trun_flags = 0x001;
  t.sample_count = static_cast<std::uint32_t>(kMaxFramesPerCall + 1);
  EXPECT_EQ(parse_fragments(fragment({t}), init_of({TrackSpec{}})).error(), errc::limit_exceeded);
}

TEST(DemuxFragments, MoofWithoutMdatIsAnError) {
  TrafSpec t;
  t.samples = {{1, 4, kSync, 0}};
  const Bytes good = fragment({t});
  const Bytes moof_only = good.share(0, good.size() - 12);
  const InitSegment init = init_of({TrackSpec{}});
  EXPECT_EQ(parse_fragments(moof_only, init).error(), errc::truncated);
  EXPECT_EQ(parse_fragments(concat({moof_only, good}), init).error(), errc::malformed);
}

TEST(DemuxFragments, TimeOverflowIsMalformed) {
  TrafSpec t;
  t.tfdt = std::uint64_t{1} << 63;
  t.samples = {{1, 1, kSync, 0}};
  EXPECT_EQ(parse_fragments(fragment({t}), init_of({TrackSpec{}})).error(), errc::malformed);
  TrackSpec slow;
  slow.timescale = 1;  // ×90000 on the way to 90 kHz
  t.tfdt = std::uint64_t{1} << 62;
  EXPECT_EQ(parse_fragments(fragment({t}), init_of({slow})).error(), errc::malformed);
}

}  // namespace
}  // namespace sf::cmaf
