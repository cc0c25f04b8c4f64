#include "l45/tag/rules.hpp"

#include <gtest/gtest.h>

#include <cstring>

namespace l45::tag {
namespace {

uint64_t num_of(const uint8_t* v) {
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i)
    n |= static_cast<uint64_t>(v[i]) << (8 * i);
  return n;
}

TEST(RulesParser, TheIssuesExamplesParse) {
  auto set = parse_rules(R"(# the issue's examples
out     app 24 tag 26                       log "Tagged_packet_found"
out     app 1 tag 7                         mark 1
out     app 5 tag "tenant-a" dport 443      count
in      app 9 untrusted                     drop
out     app 3 tag 1 signed                  throttle 10mbit
out     app 1 tag 7                         export
forward app 1 tag 7                         count
)");
  ASSERT_TRUE(set.errors.empty()) << format_errors(set.errors);
  ASSERT_EQ(set.rules.size(), 7u);
  const auto& log = set.rules[0];
  EXPECT_EQ(log.line, 2);
  EXPECT_EQ(log.bpf.focus, L45_FOCUS_OUT);
  EXPECT_EQ(log.bpf.action, L45_ACT_LOG);
  EXPECT_EQ(log.log_prefix, "Tagged_packet_found");
  EXPECT_EQ(log.bpf.cond, static_cast<uint32_t>(L45_C_APP | L45_C_TAG));
  EXPECT_EQ(log.bpf.app, 24u);
  EXPECT_EQ(log.bpf.tag_kind, L45_TAG_NUM);
  EXPECT_EQ(num_of(log.bpf.tag_value), 26u);
  EXPECT_EQ(set.rules[1].bpf.action, L45_ACT_MARK);
  EXPECT_EQ(set.rules[1].bpf.arg, 1u);
  const auto& cnt = set.rules[2];
  EXPECT_EQ(cnt.bpf.tag_kind, L45_TAG_STR);
  EXPECT_EQ(cnt.bpf.tag_len, 8);
  EXPECT_EQ(std::memcmp(cnt.bpf.tag_value, "tenant-a", 8), 0);
  EXPECT_EQ(cnt.bpf.dport_lo, 443);
  EXPECT_EQ(cnt.bpf.dport_hi, 443);
  EXPECT_EQ(set.rules[3].bpf.focus, L45_FOCUS_IN);
  EXPECT_TRUE(set.rules[3].bpf.cond & L45_C_UNTRUSTED);
  EXPECT_EQ(set.rules[4].bpf.arg, 10000000u / 8);  // bytes per second
  EXPECT_TRUE(set.rules[4].bpf.cond & L45_C_SIGNED);
  EXPECT_EQ(set.rules[5].bpf.action, L45_ACT_EXPORT);
  EXPECT_EQ(set.rules[6].bpf.focus, L45_FOCUS_FORWARD);
  EXPECT_EQ(set.rules[2].text, "out     app 5 tag \"tenant-a\" dport 443      count");
}

TEST(RulesParser, EveryConditionAndItsEncoding) {
  auto set = parse_rules(
      "out src 198.51.100.0/24 dst fd00::1 count\n"  // families differ: an error
      "out src 198.51.100.7/24 dst 203.0.113.0/25 sport 1000-2000 proto udp uid 1000 trusted "
      "tag \"web*\" log\n");
  ASSERT_EQ(set.errors.size(), 1u);
  EXPECT_EQ(set.errors[0].line, 1);
  ASSERT_EQ(set.rules.size(), 1u);
  const auto& b = set.rules[0].bpf;
  EXPECT_EQ(b.src.family, 4);
  const uint8_t src[4] = {198, 51, 100, 0};  // host bits cleared
  EXPECT_EQ(std::memcmp(b.src.addr, src, 4), 0);
  EXPECT_EQ(b.src.mask[2], 0xff);
  EXPECT_EQ(b.src.mask[3], 0);
  EXPECT_EQ(b.dst.mask[3], 0x80);
  EXPECT_EQ(b.sport_lo, 1000);
  EXPECT_EQ(b.sport_hi, 2000);
  EXPECT_EQ(b.proto, 17);
  EXPECT_EQ(b.uid, 1000u);
  EXPECT_TRUE(b.cond & L45_C_TAG_PREFIX);
  EXPECT_EQ(b.tag_len, 3);
  EXPECT_EQ(b.tag_mask[2], 0xff);
  EXPECT_EQ(b.tag_mask[3], 0);
  EXPECT_TRUE(set.rules[0].log_prefix.empty());
}

TEST(RulesParser, BadLinesAreReportedWithTheirLineNumbers) {
  auto set = parse_rules(
      "out app 1 count\n"                              // 1 ok
      "\n"                                             // 2 empty
      "   # only a comment\n"                          // 3
      "sideways app 1 drop\n"                          // 4 bad focus
      "out app 0 count\n"                              // 5 app 0
      "out app 1 tag 7 frob\n"                         // 6 unknown action
      "out app 1 tag \"open\n"                         // 7 unterminated
      "out app 1 app 2 count\n"                        // 8 twice
      "out dport 9-3 count\n"                          // 9 backwards range
      "out app 1\n"                                    // 10 no action
      "out app 1 count extra\n"                        // 11 trailing word
      "out throttle 10parsecs\n"                       // 12 unit
      "in app 1 mark 3\n"                              // 13 mark on in
      "out trusted untrusted drop\n"                   // 14 contradiction
      "out tag \"a string that is too long\" count\n"  // 15 > 16
      "out src 300.1.1.1 count\n"                      // 16 address
      "out proto icmp count\n"                         // 17 proto
      "out app 99999999999 count\n"                    // 18 out of range
      "out mark\n"                                     // 19 no value
      "out app 2 drop # trailing comment\n");          // 20 ok
  ASSERT_EQ(set.rules.size(), 2u);
  EXPECT_EQ(set.rules[0].line, 1);
  EXPECT_EQ(set.rules[1].line, 20);
  EXPECT_EQ(set.rules[1].text, "out app 2 drop");
  std::vector<int> lines;
  for (const auto& e : set.errors)
    lines.push_back(e.line);
  EXPECT_EQ(lines, (std::vector<int>{4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19}));
  EXPECT_NE(set.errors[2].message.find("frob"), std::string::npos);
  EXPECT_NE(format_errors(set.errors).find("line 4: a rule starts with its focus"),
            std::string::npos);
}

TEST(RulesParser, AHashInsideQuotesIsNotAComment) {
  auto set = parse_rules("out app 1 log \"a#b\" # real comment\n");
  ASSERT_TRUE(set.errors.empty()) << format_errors(set.errors);
  EXPECT_EQ(set.rules[0].log_prefix, "a#b");
}

TEST(RulesParser, MoreRulesThanTheProgramsHoldIsAnError) {
  std::string text;
  for (int i = 0; i < L45_RULES_MAX + 2; ++i)
    text += "out app 1 count\n";
  auto set = parse_rules(text);
  EXPECT_EQ(set.rules.size(), static_cast<size_t>(L45_RULES_MAX));
  ASSERT_EQ(set.errors.size(), 2u);
  EXPECT_EQ(set.errors[0].line, L45_RULES_MAX + 1);
}

TEST(RulesParser, BinaryGarbageGivesErrorsNotACrash) {
  std::string junk("out \0\xff\x01 app", 12);
  auto set = parse_rules(junk + "\n\"\"\"\n\xff\xfe\n");
  EXPECT_TRUE(set.rules.empty());
  EXPECT_EQ(set.errors.size(), 3u);
}

TEST(TagValue, NumbersAndStringsRoundTrip) {
  l45_tag t{};
  t.app = 24;
  std::string why;
  ASSERT_TRUE(parse_tag_value("26", t, &why)) << why;
  EXPECT_EQ(t.kind, L45_TAG_NUM);
  EXPECT_EQ(t.len, 8);
  EXPECT_EQ(t.app, 24u);
  EXPECT_EQ(format_tag(t), "24:26");
  ASSERT_TRUE(parse_tag_value("18446744073709551615", t, &why));
  EXPECT_EQ(format_tag(t), "24:18446744073709551615");
  t.app = 5;
  ASSERT_TRUE(parse_tag_value("tenant-a", t, &why));
  EXPECT_EQ(t.kind, L45_TAG_STR);
  EXPECT_EQ(t.len, 8);
  EXPECT_EQ(format_tag(t), "5:\"tenant-a\"");
  ASSERT_TRUE(parse_tag_value("\"42\"", t, &why));  // a quoted number is a string
  EXPECT_EQ(t.kind, L45_TAG_STR);
  EXPECT_FALSE(parse_tag_value("", t, &why));
  EXPECT_FALSE(parse_tag_value("has space", t, &why));
  EXPECT_FALSE(parse_tag_value("seventeen-chars-x", t, &why));
  EXPECT_NE(why.find("16"), std::string::npos);
}

}  // namespace
}  // namespace l45::tag
