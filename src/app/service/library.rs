//! The service's database side: one store connection of its own, opened on first use, for the
//! window's reads (counts, pages of the recipients table, previews, the failed-recipients
//! export) and its few writes (import, resend, marking uncertain rows sent). Never starts a run.

use crate::app::AppError;
use std::path::{Path, PathBuf};

use super::{PreviewData, campaigns, load};
use crate::campaign::Campaign;
use crate::store::{CampaignId, Counts, RecipientRef, RecipientRow, ResendFilter, State, Store};
use crate::{identity, import};

pub(super) struct Library {
    db: PathBuf,
    store: Option<Store>,
}

impl Library {
    pub(super) fn new(db: PathBuf) -> Library {
        Library { db, store: None }
    }

    pub(super) fn store(&mut self) -> Result<&mut Store, AppError> {
        if self.store.is_none() {
            self.store = Some(Store::open(&self.db).map_err(AppError::from)?);
        }
        self.store
            .as_mut()
            .ok_or_else(|| AppError::other("the database is not open"))
    }
    pub(super) fn campaign_id(&mut self, campaign: &Campaign) -> Result<CampaignId, AppError> {
        let store = self.store()?;
        identity::campaign_id(store, campaign).map_err(AppError::from)
    }
    pub(super) fn import(
        &mut self,
        path: &Path,
    ) -> Result<(import::ImportReport, Counts), AppError> {
        let campaign = load(path)?;
        let store = self.store()?;
        let (id, report) = import::import(store, &campaign).map_err(AppError::from)?;
        let counts = store.counts(id).map_err(AppError::from)?;
        Ok((report, counts))
    }
    /// The campaign's counts, found by its file's identity alone: a file with a problem still
    /// shows what the database holds for it (issue #20: "0 of 0 done" beside 1,531 delivered).
    pub(super) fn counts(&mut self, path: &Path) -> Result<Counts, AppError> {
        let store = self.store()?;
        match campaigns::find(store, path)? {
            Some(id) => store.counts(id).map_err(AppError::from),
            None => Ok(Counts::default()),
        }
    }
    pub(super) fn page(
        &mut self,
        path: &Path,
        state: Option<State>,
        search: &str,
        offset: u64,
        limit: u32,
    ) -> Result<(u64, Vec<RecipientRow>), AppError> {
        let store = self.store()?;
        let Some(id) = campaigns::find(store, path)? else {
            return Ok((0, Vec::new()));
        };
        let search = Some(search).filter(|text| !text.trim().is_empty());
        let total = store
            .count_matching(id, state, search)
            .map_err(AppError::from)?;
        let rows = store
            .page_at(id, state, search, offset, limit)
            .map_err(AppError::from)?;
        Ok((total, rows))
    }
    /// Recipient `index`'s message exactly as `herald preview` shows it (one code path).
    pub(super) fn preview(&mut self, path: &Path, index: u64) -> Result<PreviewData, AppError> {
        let campaign = load(path)?;
        let store = self.store()?;
        let preview = crate::app::preview(&campaign, store, &RecipientRef::Index(index))
            .map_err(AppError::from)?;
        if let Some(reason) = preview.skipped {
            return Err(format!(
                "the personalization script skips {}: {reason}",
                preview.email
            )
            .into());
        }
        let headers = preview
            .headers
            .iter()
            .map(|(name, value)| format!("{name}: {value}"))
            .collect::<Vec<_>>()
            .join("\n");
        Ok(PreviewData {
            index,
            email: preview.email,
            subject: preview.subject,
            headers,
            text: preview.text,
            html: preview.html,
            size_bytes: preview.size_bytes,
            sample: preview.sample,
            inline_images: inline_images(&campaign),
        })
    }
    /// Failed (and, if asked, uncertain and dead-address) recipients back to `pending`.
    pub(super) fn resend(
        &mut self,
        path: &Path,
        include_uncertain: bool,
        include_hard: bool,
    ) -> Result<u64, AppError> {
        let campaign = load(path)?;
        let id = self.campaign_id(&campaign)?;
        let filter = ResendFilter {
            include_failed: true,
            include_uncertain,
            include_hard,
            ..ResendFilter::default()
        };
        self.store()?.resend(id, &filter).map_err(AppError::from)
    }

    pub(super) fn mark_sent(&mut self, path: &Path) -> Result<u64, AppError> {
        let campaign = load(path)?;
        let id = self.campaign_id(&campaign)?;
        self.store()?
            .mark_uncertain_sent(id)
            .map_err(AppError::from)
    }
    pub(super) fn export_failed(&mut self, path: &Path, to: &Path) -> Result<u64, AppError> {
        let campaign = load(path)?;
        let id = self.campaign_id(&campaign)?;
        let store = self.store()?;
        let mut out = crate::csvfile::line(&[
            "email", "state", "attempts", "route", "code", "status", "reply",
        ]);
        let mut after = 0;
        let mut count = 0;
        for state in [State::Failed, State::Uncertain] {
            loop {
                let rows = store
                    .page(id, Some(state), None, after, 1_000)
                    .map_err(AppError::from)?;
                let Some(last) = rows.last() else {
                    break;
                };
                after = last.id;
                for row in &rows {
                    let reply = row.reply.clone().unwrap_or_default();
                    out.push_str(&crate::csvfile::line(&[
                        &row.email,
                        row.state.as_str(),
                        &row.attempts.to_string(),
                        row.route.as_deref().unwrap_or(""),
                        &reply.code.map(|code| code.to_string()).unwrap_or_default(),
                        reply.enhanced.as_deref().unwrap_or(""),
                        &reply.text,
                    ]));
                    count += 1;
                }
            }
            after = 0;
        }
        std::fs::write(to, out)
            .map_err(|error| format!("could not write {}: {error}", to.display()))?;
        Ok(count)
    }
}

/// The inline images by the Content-ID the message gives them (the file name, as
/// `compose` names them); an unreadable file is left out and the preview shows its box empty.
fn inline_images(campaign: &Campaign) -> Vec<(String, Vec<u8>)> {
    campaign
        .message
        .inline
        .iter()
        .filter_map(|path| {
            let name = path.file_name()?.to_string_lossy().into_owned();
            Some((name, std::fs::read(path).ok()?))
        })
        .collect()
}
