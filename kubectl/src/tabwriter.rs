//! Column alignment the way kubectl does it: kubectl writes cells terminated by `\t` into
//! Go's elastic tabwriter, so the exact placement of every space in its tables and in
//! `describe` comes from that algorithm. This is the same algorithm (left-aligned, space
//! padding), including the `RememberWidths` behaviour of kubectl's fork, which keeps
//! column widths across flushes so that rows printed later by `get -w` line up.
//!
//! A column is a block of consecutive lines that all have a tab-terminated cell at that
//! position; its width is the widest cell plus the padding, and at least the minimum
//! width. The text after the last tab of a line belongs to no column and is never padded.

/// An elastic tabwriter that collects text and aligns it on [`TabWriter::flush`].
#[derive(Debug, Clone)]
pub struct TabWriter {
    min_width: usize,
    padding: usize,
    remember_widths: bool,
    /// Widest width seen per column across flushes (with `remember_widths`).
    max_widths: Vec<usize>,
    pending: String,
    out: String,
}

impl TabWriter {
    /// The writer of kubectl's tables (`get`, `api-resources`): minimum width 6,
    /// padding 3, widths remembered across flushes.
    pub fn for_tables() -> TabWriter {
        TabWriter::new(6, 3, true)
    }

    /// The writer of kubectl's `describe`: no minimum width, padding 2.
    pub fn for_describe() -> TabWriter {
        TabWriter::new(0, 2, false)
    }

    pub fn new(min_width: usize, padding: usize, remember_widths: bool) -> TabWriter {
        TabWriter {
            min_width,
            padding,
            remember_widths,
            max_widths: Vec::new(),
            pending: String::new(),
            out: String::new(),
        }
    }

    pub fn write_str(&mut self, text: &str) {
        self.pending.push_str(text);
    }

    /// Aligns everything written since the last flush; later text starts new columns
    /// (unless widths are remembered).
    pub fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let text = std::mem::take(&mut self.pending);
        // Every line split into its cells; the text after the last newline is the
        // unterminated last line (usually empty).
        let lines: Vec<Vec<&str>> = text.split('\n').map(|l| l.split('\t').collect()).collect();
        let mut fmt = Formatter {
            lines: &lines,
            min_width: self.min_width,
            padding: self.padding,
            max_widths: if self.remember_widths {
                Some(&mut self.max_widths)
            } else {
                None
            },
            widths: Vec::new(),
            out: &mut self.out,
        };
        fmt.format(0, lines.len());
    }

    /// Takes the aligned output produced so far.
    pub fn take_output(&mut self) -> String {
        std::mem::take(&mut self.out)
    }

    /// The text as written, tabs and all, for the few places kubectl writes through its
    /// prefix writer without a tabwriter (a pod template in `rollout history`).
    pub fn unaligned(mut self) -> String {
        self.out.push_str(&self.pending);
        self.out
    }

    /// Flushes and returns all the output.
    pub fn finish(mut self) -> String {
        self.flush();
        self.out
    }
}

struct Formatter<'a, 't> {
    lines: &'a [Vec<&'t str>],
    min_width: usize,
    padding: usize,
    max_widths: Option<&'a mut Vec<usize>>,
    /// Widths of the columns to the left of the one being formatted.
    widths: Vec<usize>,
    out: &'a mut String,
}

impl Formatter<'_, '_> {
    /// True if line `i` has a tab-terminated cell in `column` (its last cell does not
    /// count: it is the text before the newline).
    fn has_cell(&self, i: usize, column: usize) -> bool {
        column + 1 < self.lines[i].len()
    }

    fn format(&mut self, mut line0: usize, line1: usize) {
        let column = self.widths.len();
        let mut this = line0;
        while this < line1 {
            if !self.has_cell(this, column) {
                this += 1;
                continue;
            }
            // A column block starts here: print the lines before it as they are.
            self.write_lines(line0, this);
            line0 = this;
            let mut width = self.min_width;
            while this < line1 && self.has_cell(this, column) {
                width = width.max(text_width(self.lines[this][column]) + self.padding);
                this += 1;
            }
            if let Some(max) = self.max_widths.as_deref_mut() {
                if max.len() < self.widths.len() {
                    max.extend_from_slice(&self.widths[max.len()..]);
                }
                if max.len() == column {
                    max.push(width);
                } else if max[column] > width {
                    width = max[column];
                } else {
                    max[column] = width;
                }
            }
            self.widths.push(width);
            self.format(line0, this);
            self.widths.pop();
            line0 = this;
        }
        self.write_lines(line0, line1);
    }

    fn write_lines(&mut self, line0: usize, line1: usize) {
        for i in line0..line1 {
            let line = &self.lines[i];
            for (j, cell) in line.iter().enumerate() {
                self.out.push_str(cell);
                if let Some(&width) = self.widths.get(j) {
                    let pad = width.saturating_sub(text_width(cell));
                    self.out.extend(std::iter::repeat_n(' ', pad));
                }
            }
            // The last line is the unterminated rest of the text.
            if i + 1 < self.lines.len() {
                self.out.push('\n');
            }
        }
    }
}

/// Go's tabwriter counts runes.
fn text_width(s: &str) -> usize {
    s.chars().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> String {
        let mut w = TabWriter::for_tables();
        w.write_str(text);
        w.finish()
    }

    #[test]
    fn columns_take_the_widest_cell_plus_padding() {
        assert_eq!(
            table("NAME\tREADY\tSTATUS\nweb-server\t1/1\tRunning\na\t0/1\tPending\n"),
            "NAME         READY   STATUS\nweb-server   1/1     Running\na            0/1     Pending\n"
        );
    }

    #[test]
    fn minimum_width_applies_to_narrow_columns() {
        assert_eq!(table("A\tB\nx\ty\n"), "A     B\nx     y\n");
    }

    #[test]
    fn empty_last_cell_leaves_the_padding() {
        assert_eq!(table("A\tB\nxx\t\n"), "A     B\nxx    \n");
    }

    #[test]
    fn blocks_end_at_lines_without_the_column() {
        let mut w = TabWriter::for_describe();
        w.write_str("Name:\tweb\nNamespace:\tdefault\nContainers:\n  app:\n    Image:\tnginx\n    Port:\t<none>\n");
        assert_eq!(
            w.finish(),
            "Name:       web\nNamespace:  default\nContainers:\n  app:\n    Image:  nginx\n    Port:   <none>\n"
        );
    }

    #[test]
    fn nested_columns_are_aligned_within_their_block() {
        let mut w = TabWriter::for_describe();
        w.write_str("a\tb\tc\nlonger\tb\nx\tyy\tz\n");
        // Column 0 spans all three lines; column 1 is two separate blocks.
        assert_eq!(w.finish(), "a       b  c\nlonger  b\nx       yy  z\n");
    }

    #[test]
    fn remembered_widths_keep_later_rows_aligned() {
        let mut w = TabWriter::for_tables();
        w.write_str("NAME\tSTATUS\nweb-1\tRunning\n");
        w.flush();
        w.write_str("x\tPending\n");
        w.flush();
        w.write_str("a-much-longer-name\tRunning\n");
        assert_eq!(
            w.finish(),
            "NAME    STATUS\nweb-1   Running\nx       Pending\na-much-longer-name   Running\n"
        );
    }

    #[test]
    fn unicode_counts_characters() {
        assert_eq!(table("é\tb\nab\tc\n"), "é     b\nab    c\n");
    }
}
