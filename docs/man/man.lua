-- pandoc filter: docs/ pages as manual pages (docs/packaging.md, "Manual pages").
--
-- The input is two files: docs/man/PAGE.md, then the page of docs/ it
-- describes. PAGE.md holds the head (NAME, SYNOPSIS, DESCRIPTION) before
-- the line `<!-- man-body -->`, and the tail (FILES, SEE ALSO...) between
-- it and `<!-- man-end -->`; the docs page goes between head and tail. Of
-- the docs page, its title (the first level-1 heading) goes, since NAME
-- says it, and the other headings move up one level ("##" becomes .SH).
-- Tables become tagged paragraphs (.TP): the docs' tables do not fit 80
-- columns as tbl(1) tables. Long inline code gets break points.

local function blocks_text(blocks)
  return pandoc.utils.stringify(pandoc.Div(blocks))
end

local function table_to_list(tbl)
  local head = {}
  if tbl.head and tbl.head.rows and #tbl.head.rows > 0 then
    for _, c in ipairs(tbl.head.rows[1].cells) do
      table.insert(head, blocks_text(c.contents))
    end
  end
  local items = {}
  for _, body in ipairs(tbl.bodies) do
    for _, row in ipairs(body.body) do
      local term = {}
      local defs = {}
      for i, c in ipairs(row.cells) do
        if i == 1 then
          term = pandoc.utils.blocks_to_inlines(c.contents)
        elseif blocks_text(c.contents) ~= "" then
          local inl = pandoc.utils.blocks_to_inlines(c.contents)
          if #row.cells > 2 and head[i] and head[i] ~= "" then
            table.insert(inl, 1, pandoc.Space())
            table.insert(inl, 1, pandoc.Emph({pandoc.Str(head[i] .. ":")}))
          end
          table.insert(defs, pandoc.Para(inl))
        end
      end
      if #defs == 0 then defs = {pandoc.Para({pandoc.Str("-")})} end
      table.insert(items, {term, {defs}})
    end
  end
  return pandoc.DefinitionList(items)
end

-- A long word of code (a JSON template, a metric with its labels) may break
-- after , | / { or = (\: is roff's optional break point).
local function long_code(c)
  if #c.text <= 40 or not c.text:find("[,|/{=]") then return nil end
  local t = c.text:gsub("\\", "\\e"):gsub("%-", "\\-"):gsub("([,|/{=])", "%1\\:")
  return pandoc.RawInline("man", "\\f[C]" .. t .. "\\f[R]")
end

function Pandoc(doc)
  local head, tail, body = {}, {}, {}
  local part = head
  local seen_title = false
  for _, b in ipairs(doc.blocks) do
    if b.t == "RawBlock" and b.text:match("man%-body") then
      part = tail
    elseif b.t == "RawBlock" and b.text:match("man%-end") then
      part = body
    elseif part == body and b.t == "Header" then
      if b.level == 1 and not seen_title then
        seen_title = true
      else
        b.level = math.max(1, b.level - 1)
        table.insert(body, b)
      end
    else
      table.insert(part, b)
    end
  end
  local out = {}
  for _, list in ipairs({head, body, tail}) do
    for _, b in ipairs(list) do table.insert(out, b) end
  end
  doc.blocks = out
  return doc:walk({Table = table_to_list, Code = long_code})
end
