// A read-only YAML document tree with source marks, built from libyaml's event parser.
// Private to the loader: it promises exactly what policy_loader.cc needs and no more.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace authbypass::yaml {

// A 0-based position in the text; `is_null()` when unknown.
struct Mark {
  int line = -1;
  int column = -1;
  bool is_null() const { return line < 0; }
};

class Tree;

// A handle to one node of a Tree; valid while the Tree lives. A default (absent) Node is
// false in a boolean context and is none of Null/Scalar/Sequence/Map.
class Node {
 public:
  Node() = default;
  explicit operator bool() const { return tree_ != nullptr; }

  bool IsNull() const;    // an empty value, `~` or `null` (plain, untagged)
  bool IsScalar() const;  // any other scalar, quoted or not
  bool IsSequence() const;
  bool IsMap() const;

  const std::string& Scalar() const;  // the scalar's text; empty for non-scalars
  // yaml-cpp's convention: "?" for a plain untagged node, "!" for a quoted untagged
  // scalar, else the resolved tag (e.g. "tag:yaml.org,2002:str").
  const std::string& Tag() const;
  yaml::Mark Mark() const;

  std::size_t size() const;            // entries of a sequence, pairs of a map, else 0
  Node at(std::size_t i) const;        // i-th sequence entry
  Node key_at(std::size_t i) const;    // i-th map key
  Node value_at(std::size_t i) const;  // i-th map value
  // The value of the first pair whose key is the plain scalar `key`; absent if none or
  // if this is not a map.
  Node operator[](std::string_view key) const;

 private:
  friend class Tree;
  Node(const Tree* t, std::uint32_t i) : tree_(t), index_(i) {}
  const Tree* tree_ = nullptr;
  std::uint32_t index_ = 0;
};

// Why parsing failed: a position and a message for people.
struct ParseError {
  yaml::Mark mark;
  std::string message;
  bool too_deep = false;  // nesting beyond the limit (message says so too)
};

// Every document of one YAML stream. Aliases resolve to the anchored node (shared, not
// copied). Nesting deeper than `max_depth` is a ParseError, never deep recursion.
class Tree {
 public:
  static std::unique_ptr<Tree> parse(std::string_view text, std::optional<ParseError>& error,
                                     int max_depth = 200);

  const std::vector<Node>& documents() const { return documents_; }

 private:
  friend class Node;
  enum class Kind : std::uint8_t { kNull, kScalar, kSequence, kMap };
  struct Data {
    Kind kind = Kind::kNull;
    yaml::Mark mark;
    std::string text;                     // scalar text
    std::string tag;                      // see Node::Tag
    std::vector<std::uint32_t> children;  // sequence entries, or key,value,key,value...
  };
  std::vector<Data> nodes_;
  std::vector<Node> documents_;
};

}  // namespace authbypass::yaml
