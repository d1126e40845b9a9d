"""Writing features one by one (OGC API Features Part 4), every version kept, and the feed of changes."""
