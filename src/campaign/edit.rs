//! Saving a campaign the window edited into the text a person wrote (issue #20): the file is
//! read as a `toml_edit` document and only the keys whose values changed are touched, so its
//! comments, blank lines, key order, quoting and keys Herald does not know all stay as they
//! were. A key the window added goes at the end of its table; a key it removed (an emptied Text
//! body's `text`) leaves with the lines that belong to it. The only `toml_edit` user; it never
//! decides what a campaign means (that is `validate.rs`).

use toml_edit::{DocumentMut, Item, TableLike};

use super::RawCampaign;

/// `raw` written over `existing`, the campaign file's text: what changed between the campaign
/// `existing` reads as and `raw` is edited into it, and nothing else. Text that is not a
/// campaign file (or not TOML) is replaced by `raw`'s own serialization.
pub(super) fn write_over(raw: &RawCampaign, existing: &str) -> Result<String, String> {
    let fresh_text = raw.to_toml()?;
    let (Ok(mut document), Ok(before)) = (
        existing.parse::<DocumentMut>(),
        RawCampaign::from_toml(existing),
    ) else {
        return Ok(fresh_text);
    };
    // Both sides go through the same serializer, so a difference is an edit, never a matter
    // of how a value was spelled in the file.
    let old = as_table(&before.to_toml()?)?;
    let new = as_table(&fresh_text)?;
    let fresh = fresh_text
        .parse::<DocumentMut>()
        .map_err(|error| error.to_string())?;
    merge(document.as_table_mut(), &old, &new, fresh.as_table());
    Ok(document.to_string())
}

fn as_table(text: &str) -> Result<toml::Table, String> {
    text.parse::<toml::Table>()
        .map_err(|error| error.message().to_string())
}

/// Edits `doc` (a table of the person's file) from `old` to `new`, taking the formatted form
/// of anything new from `fresh` (the same table in `new`'s serialization).
fn merge(doc: &mut dyn TableLike, old: &toml::Table, new: &toml::Table, fresh: &dyn TableLike) {
    for key in old.keys() {
        if !new.contains_key(key) {
            doc.remove(key);
        }
    }
    for (key, new_value) in new {
        let Some(fresh_item) = fresh.get(key) else {
            continue;
        };
        let old_value = old.get(key);
        if old_value == Some(new_value) {
            continue;
        }
        let Some(item) = doc.get_mut(key) else {
            doc.insert(key, detached(fresh_item));
            continue;
        };
        match (old_value, new_value) {
            (Some(toml::Value::Table(old_table)), toml::Value::Table(new_table))
                if item.is_table_like() =>
            {
                if let (Some(doc_table), Some(fresh_table)) =
                    (item.as_table_like_mut(), fresh_item.as_table_like())
                {
                    merge(doc_table, old_table, new_table, fresh_table);
                }
            }
            (Some(toml::Value::Array(old_items)), toml::Value::Array(new_items))
                if item.is_array_of_tables() && fresh_item.is_array_of_tables() =>
            {
                merge_tables(item, old_items, new_items, fresh_item);
            }
            _ => replace(item, fresh_item),
        }
    }
}

/// `[[relay]]` and the like, element by element: a relay edited in place keeps its comments;
/// one added goes after the last, one removed from the end leaves.
fn merge_tables(item: &mut Item, old: &[toml::Value], new: &[toml::Value], fresh: &Item) {
    let (Some(doc), Some(fresh)) = (item.as_array_of_tables_mut(), fresh.as_array_of_tables())
    else {
        return;
    };
    while doc.len() > new.len() {
        doc.remove(doc.len() - 1);
    }
    for (index, new_value) in new.iter().enumerate() {
        let Some(fresh_table) = fresh.get(index) else {
            continue;
        };
        let Some(doc_table) = doc.get_mut(index) else {
            let mut table = fresh_table.clone();
            forget_positions(&mut table);
            doc.push(table);
            continue;
        };
        match (old.get(index), new_value) {
            (Some(toml::Value::Table(old_table)), toml::Value::Table(new_table)) => {
                merge(doc_table, old_table, new_table, fresh_table);
            }
            _ => {
                let mut table = fresh_table.clone();
                forget_positions(&mut table);
                *doc_table = table;
            }
        }
    }
}

/// Puts `fresh`'s value in place of `item`'s, keeping the spaces and the comment around the
/// old one (`subject = "…"  # for the spring sale`) and the form of the place: a value stays a
/// value (an inline table stays inline), a table a table.
fn replace(item: &mut Item, fresh: &Item) {
    if let Some(value) = item.as_value_mut() {
        if let Ok(mut new) = fresh.clone().into_value() {
            let decor = value.decor().clone();
            *new.decor_mut() = decor;
            *value = new;
        }
        return;
    }
    *item = detached(fresh);
}

/// A copy of `fresh` to put into the person's document: its tables carry no position from the
/// serialization it came from, so each is written after the table it follows in the file.
fn detached(fresh: &Item) -> Item {
    let mut item = fresh.clone();
    match &mut item {
        Item::Table(table) => forget_positions(table),
        Item::ArrayOfTables(tables) => {
            for table in tables.iter_mut() {
                forget_positions(table);
            }
        }
        _ => {}
    }
    item
}

fn forget_positions(table: &mut toml_edit::Table) {
    table.set_position(None);
    for (_, item) in table.iter_mut() {
        match item {
            Item::Table(inner) => forget_positions(inner),
            Item::ArrayOfTables(tables) => {
                for inner in tables.iter_mut() {
                    forget_positions(inner);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const WRITTEN: &str = r#"# Spring sale: Anna's campaign. Do not change the From without asking Ben.

[message]
from = "Acme News <news@acme.example>"   # the brand address
subject = 'Spring picks for {{ first_name }}'
html = "body.html"
text = "body.txt"
# x_note = "kept for later"

[recipients]
csv = "list.csv"

[delivery]
mode = "relay"
connections = 8            # the relay allows 10

# The ISP's relay.
[[relay]]
name = "main"
host = "smtp.acme.example"
port = 587

# Backup, weighted low.
[[relay]]
name = "backup"
host = "smtp2.acme.example"
weight = 1
"#;

    fn edited(edit: impl FnOnce(&mut RawCampaign)) -> String {
        let mut raw = RawCampaign::from_toml(WRITTEN).unwrap();
        edit(&mut raw);
        write_over(&raw, WRITTEN).unwrap()
    }

    /// The lines of `after` that are not in `before`, and those of `before` gone from `after`.
    fn changed_lines(before: &str, after: &str) -> (Vec<String>, Vec<String>) {
        let added = after
            .lines()
            .filter(|line| !before.lines().any(|old| old == *line))
            .map(String::from)
            .collect();
        let removed = before
            .lines()
            .filter(|line| !after.lines().any(|new| new == *line))
            .map(String::from)
            .collect();
        (added, removed)
    }

    #[test]
    fn nothing_changed_writes_the_file_back_byte_for_byte() {
        assert_eq!(edited(|_| {}), WRITTEN);
    }

    #[test]
    fn a_changed_subject_changes_its_one_line() {
        let after = edited(|raw| raw.message.subject = Some("Summer, {{ first_name }}".into()));
        assert_eq!(
            changed_lines(WRITTEN, &after),
            (
                vec!["subject = \"Summer, {{ first_name }}\"".to_string()],
                vec!["subject = 'Spring picks for {{ first_name }}'".to_string()]
            )
        );
    }

    #[test]
    fn a_changed_value_keeps_the_comment_beside_it() {
        let after = edited(|raw| raw.delivery.connections = Some(4));
        let (added, removed) = changed_lines(WRITTEN, &after);
        assert_eq!(
            added,
            vec!["connections = 4            # the relay allows 10"]
        );
        assert_eq!(
            removed,
            vec!["connections = 8            # the relay allows 10"]
        );
    }

    #[test]
    fn a_removed_key_leaves_and_everything_else_stays() {
        let after = edited(|raw| raw.message.text = None);
        assert_eq!(after, WRITTEN.replace("text = \"body.txt\"\n", ""));
    }

    #[test]
    fn a_new_key_goes_at_the_end_of_its_own_table() {
        let after = edited(|raw| raw.message.reply_to = Some("help@acme.example".into()));
        assert_eq!(
            after,
            WRITTEN.replace(
                "# x_note = \"kept for later\"\n",
                "reply_to = \"help@acme.example\"\n# x_note = \"kept for later\"\n"
            )
        );
    }

    #[test]
    fn a_new_table_and_a_new_relay_are_added_and_the_rest_is_kept() {
        let after = edited(|raw| {
            raw.relays[0].port = Some(2525);
            let mut third = raw.relays[1].clone();
            third.name = Some("third".into());
            raw.relays.push(third);
            raw.dkim = Some(crate::campaign::RawDkim {
                domain: Some("acme.example".into()),
                selector: Some("s1".into()),
                private_key: Some("dkim.pem".into()),
            });
        });
        assert!(after.starts_with(&WRITTEN.replace("port = 587", "port = 2525")));
        let reread = RawCampaign::from_toml(&after).unwrap();
        assert_eq!(reread.relays.len(), 3);
        assert_eq!(reread.relays[2].name.as_deref(), Some("third"));
        assert_eq!(reread.dkim.unwrap().selector.as_deref(), Some("s1"));
    }

    #[test]
    fn a_removed_relay_leaves_with_its_lines() {
        let after = edited(|raw| {
            raw.relays.pop();
        });
        let (added, removed) = changed_lines(WRITTEN, &after);
        assert!(added.is_empty(), "{added:?}");
        assert!(removed.contains(&"host = \"smtp2.acme.example\"".to_string()));
        assert!(after.contains("# The ISP's relay.\n[[relay]]\nname = \"main\""));
    }

    #[test]
    fn unknown_keys_and_inline_tables_keep_their_form() {
        let written = "[message]\nsubject = \"a\"\nheaders = { X-Campaign = \"spring\" }\n\
                       future_key = 3\n\n[recipients]\ncsv = \"list.csv\"\n";
        let mut raw = RawCampaign::from_toml(written).unwrap();
        raw.message
            .headers
            .insert("X-Campaign".into(), "summer".into());
        let after = write_over(&raw, written).unwrap();
        assert_eq!(
            after,
            written.replace("X-Campaign = \"spring\"", "X-Campaign = \"summer\"")
        );
    }

    #[test]
    fn text_that_is_not_a_campaign_is_replaced() {
        let raw = RawCampaign::from_toml(WRITTEN).unwrap();
        for broken in ["", "[message\n", "message = 3\n"] {
            let after = write_over(&raw, broken).unwrap();
            assert_eq!(RawCampaign::from_toml(&after).unwrap(), raw, "{broken:?}");
        }
    }
}
