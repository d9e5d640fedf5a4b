//! The rules every directory replica applies to policy commands. Deterministic: no clock, only
//! the directory's own state.

use super::decide::{Decision, Rule, item_action};
use super::model::{
    AccessRequest, AccessStatus, Action, Generalisation, Grant, Grantee, Policies, PolicyCommand,
    Role,
};
use crate::catalog::{Catalog, DataType, InformationItem, SharingType};
use crate::identity::NodeCode;
use crate::limits::{MAX_NAME_CHARS, MAX_PURPOSE_CHARS, thousands};

/// What the policy rules need to know of the rest of the directory.
pub trait PolicyContext {
    /// The catalog `code` as `producer` published it in the directory.
    fn published(&self, producer: &NodeCode, code: &str) -> Option<&Catalog>;
    /// The parent of an active member; `None` for the city or a unit that is not active.
    fn parent_of(&self, unit: &NodeCode) -> Option<&NodeCode>;
    /// Whether `unit` is an active member.
    fn is_active(&self, unit: &NodeCode) -> bool;
}

fn check(ok: bool, reason: impl FnOnce() -> String) -> Result<(), String> {
    if ok { Ok(()) } else { Err(reason()) }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_CHARS
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A purpose a read can state: at most [`MAX_PURPOSE_CHARS`] characters.
fn check_purpose(purpose: &str) -> Result<(), String> {
    let n = purpose.chars().count();
    check(n <= MAX_PURPOSE_CHARS, || {
        format!(
            "a purpose is at most {MAX_PURPOSE_CHARS} characters, and this one has {}: name the use in a few words",
            thousands(n as u64)
        )
    })
}

fn valid_day(day: &str) -> bool {
    day.len() == 10 && chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").is_ok()
}

/// Whether `action` can be carried out on `item`'s values: a generalisation fits its type.
fn check_fits(item: &InformationItem, action: Action) -> Result<(), String> {
    let Action::Generalise(g) = action else {
        return Ok(());
    };
    let fits = match g {
        Generalisation::Year | Generalisation::YearMonth => {
            matches!(item.data_type, DataType::Date | DataType::Datetime)
        }
        Generalisation::Prefix(_) => item.data_type == DataType::String,
        // At most 10^length wide, which bounds the band's text (InformationItem::max_sent_bytes).
        Generalisation::Band(w) => {
            item.data_type == DataType::Number && (w as f64) <= 10f64.powi(item.max_length() as i32)
        }
    };
    check(fits, || {
        let fit = match g {
            Generalisation::Year | Generalisation::YearMonth => "date and date-time items",
            Generalisation::Prefix(_) => "string items",
            Generalisation::Band(_) => "number items, at most 10^length wide",
        };
        format!(
            "item {} is a {} item: {g} applies to {fit}",
            item.code,
            format!("{:?}", item.data_type).to_lowercase()
        )
    })
}

impl Policies {
    /// Applies `command` issued by `issuer`, or says why it is refused (changing nothing).
    pub fn apply(
        &mut self,
        issuer: &NodeCode,
        command: &PolicyCommand,
        ctx: &dyn PolicyContext,
    ) -> Result<(), String> {
        match command {
            PolicyCommand::DefineRole(role) => self.define_role(issuer, role),
            PolicyCommand::Grant(grant) => {
                check(grant.access_request.is_none(), || {
                    "a grant answering an access request is made by approving it".into()
                })?;
                self.check_grant(issuer, grant, ctx)?;
                self.insert_grant(issuer, grant);
                Ok(())
            }
            PolicyCommand::Revoke(id) => self.revoke(issuer, id),
            PolicyCommand::RequestAccess(request) => self.request_access(issuer, request, ctx),
            PolicyCommand::ApproveAccess(grant) => {
                let id = grant
                    .access_request
                    .as_ref()
                    .ok_or("name the access request the grant answers")?;
                let request = self.pending_request(issuer, id)?;
                check(
                    grant.producer == request.producer
                        && grant.catalog == request.catalog
                        && grant.grantee == request.grantee
                        && grant.purpose == request.purpose,
                    || {
                        format!(
                            "the grant must be for what request {id} asks: catalog {} of {} for {} with purpose {:?}",
                            request.catalog, request.producer, request.grantee, request.purpose
                        )
                    },
                )?;
                if !request.items.is_empty() {
                    let extra = grant.items.keys().find(|i| !request.items.contains(i));
                    check(extra.is_none(), || {
                        format!("request {id} does not ask for item {}", extra.unwrap())
                    })?;
                    check(grant.others.is_none(), || {
                        format!(
                            "request {id} names its items: grant those, with no action for others"
                        )
                    })?;
                }
                check(grant.delegated_from.is_none(), || {
                    "an approved request is granted by the producer itself, not delegated".into()
                })?;
                self.check_grant(issuer, grant, ctx)?;
                self.insert_grant(issuer, grant);
                self.requests.get_mut(id).expect("checked above").status = AccessStatus::Approved {
                    grant: grant.id.clone(),
                };
                Ok(())
            }
            PolicyCommand::RejectAccess { request, reason } => {
                self.pending_request(issuer, request)?;
                check(!reason.trim().is_empty(), || {
                    "say why the request is rejected".into()
                })?;
                self.requests
                    .get_mut(request)
                    .expect("checked above")
                    .status = AccessStatus::Rejected {
                    reason: reason.clone(),
                };
                Ok(())
            }
        }
    }

    fn define_role(&mut self, issuer: &NodeCode, role: &Role) -> Result<(), String> {
        check(&role.unit == issuer, || {
            format!(
                "a node defines roles of its own unit only, not of {}",
                role.unit
            )
        })?;
        check(valid_name(&role.name), || {
            format!(
                "role name {:?} must be 1-64 lowercase letters, digits or '-', e.g. grid-worker",
                role.name
            )
        })?;
        check(
            !role.department.trim().is_empty() && !role.post.trim().is_empty(),
            || "a role names its department and post".into(),
        )?;
        self.roles.insert(role.id(), role.clone());
        Ok(())
    }

    fn insert_grant(&mut self, issuer: &NodeCode, grant: &Grant) {
        let grant = Grant {
            issuer: Some(issuer.clone()),
            ..grant.clone()
        };
        self.grants.insert(grant.id.clone(), grant);
    }

    fn check_grantee(
        &self,
        grantee: &Grantee,
        ctx: &dyn PolicyContext,
    ) -> Result<NodeCode, String> {
        let unit = grantee
            .unit()
            .ok_or_else(|| format!("{grantee} is not written as UNIT/ROLE or NAME@UNIT"))?;
        match grantee {
            Grantee::Role(id) => check(self.roles.contains_key(id), || {
                format!("role {id} is not defined: its unit defines it with `tierlink role define`")
            })?,
            Grantee::Principal(id) => check(ctx.is_active(&unit), || {
                format!("principal {id} belongs to {unit}, which is not an active member")
            })?,
        }
        Ok(unit)
    }

    /// The grant's shape, its catalog and items, who may issue it, and that it gives nothing
    /// away that it hides ([`Decision::check_reveal`], on the catalog as published).
    fn check_grant(
        &self,
        issuer: &NodeCode,
        grant: &Grant,
        ctx: &dyn PolicyContext,
    ) -> Result<(), String> {
        check(valid_name(&grant.id), || {
            format!(
                "grant id {:?} must be 1-64 lowercase letters, digits or '-'",
                grant.id
            )
        })?;
        check(!self.grants.contains_key(&grant.id), || {
            format!(
                "grant {} already exists; revoke it first or choose another id",
                grant.id
            )
        })?;
        check(!grant.purpose.trim().is_empty(), || {
            "state the grant's purpose".into()
        })?;
        check_purpose(&grant.purpose)?;
        check(valid_day(&grant.expires), || {
            format!("expiry {:?} is not a day written YYYY-MM-DD", grant.expires)
        })?;
        let catalog = ctx
            .published(&grant.producer, &grant.catalog)
            .ok_or_else(|| {
                format!(
                    "{} has published no catalog {} in the directory",
                    grant.producer, grant.catalog
                )
            })?;
        for item in grant.items.keys() {
            check(catalog.item_index(item).is_some(), || {
                format!("catalog {} has no shared item {item}", catalog.code)
            })?;
        }
        if let Some(rows) = &grant.rows {
            check(catalog.item_index(&rows.item).is_some(), || {
                format!(
                    "catalog {} has no item {} to scope rows by",
                    catalog.code, rows.item
                )
            })?;
            check(
                !rows.within.is_empty() && rows.within.bytes().all(|b| b.is_ascii_digit()),
                || format!("row scope {:?} is not a division code", rows.within),
            )?;
        }
        for (code, action) in &grant.items {
            let item = &catalog.items[catalog.item_index(code).expect("checked above")];
            check_fits(item, *action)?;
        }
        if let Some(action) = grant.others {
            for item in &catalog.items {
                if !grant.items.contains_key(&item.code)
                    && item_action(grant, item).1 == Rule::Others
                {
                    check_fits(item, action).map_err(|e| {
                        format!("--others {action}: {e}; name the item with another action")
                    })?;
                }
            }
        }
        self.check_issuer(issuer, grant, catalog, ctx)?;
        // Taken with the other grants the same grantee holds on the catalog: records of two
        // answers join on their key.
        let alongside: Vec<&Grant> = self
            .grants
            .values()
            .filter(|g| {
                g.producer == grant.producer
                    && g.catalog == grant.catalog
                    && g.grantee == grant.grantee
                    && g.id != grant.id
            })
            .collect();
        // Both ways: the new grant beside those held, and each held one beside the new grant.
        for held in &alongside {
            let others: Vec<&Grant> = alongside
                .iter()
                .copied()
                .filter(|g| g.id != held.id)
                .chain([grant])
                .collect();
            Decision::under(held, catalog)
                .check_reveal_alongside(catalog, &others)
                .map_err(|leaks| leaks.to_string())?;
        }
        Decision::under(grant, catalog)
            .check_reveal_alongside(catalog, &alongside)
            .map(drop)
            .map_err(|leaks| leaks.to_string())
    }

    /// Who may issue `grant`: the producer, or, for a delegation, the holder of the parent
    /// grant passing no more than it holds to a child unit.
    fn check_issuer(
        &self,
        issuer: &NodeCode,
        grant: &Grant,
        catalog: &Catalog,
        ctx: &dyn PolicyContext,
    ) -> Result<(), String> {
        let unit = self.check_grantee(&grant.grantee, ctx)?;
        let Some(parent_id) = &grant.delegated_from else {
            check(issuer == &grant.producer, || {
                format!(
                    "only {} grants its catalog {}; a holder passes on part of its grant as a delegation",
                    grant.producer, grant.catalog
                )
            })?;
            return check(
                catalog.sharing.kind != SharingType::Conditional || grant.access_request.is_some(),
                || {
                    format!(
                        "catalog {} is conditional: the consumer asks with `tierlink access request` and {} approves it",
                        catalog.code, grant.producer
                    )
                },
            );
        };
        let parent = self
            .grants
            .get(parent_id)
            .ok_or_else(|| format!("grant {parent_id} to delegate from does not exist"))?;
        check(parent.grantee.unit().as_ref() == Some(issuer), || {
            format!("grant {parent_id} is not held by {issuer}, so it cannot delegate it")
        })?;
        check(ctx.parent_of(&unit) == Some(issuer), || {
            format!("{issuer} delegates only to its own child units, and {unit} is not one")
        })?;
        check(
            parent.producer == grant.producer
                && parent.catalog == grant.catalog
                && parent.purpose == grant.purpose,
            || format!("a delegation keeps grant {parent_id}'s producer, catalog and purpose"),
        )?;
        check(grant.expires <= parent.expires, || {
            format!(
                "a delegation cannot outlast grant {parent_id} (expires {})",
                parent.expires
            )
        })?;
        for item in &catalog.items {
            let (mine, _) = item_action(grant, item);
            let (theirs, _) = item_action(parent, item);
            check(mine.within(theirs), || {
                format!(
                    "item {}: {mine} reveals more than {theirs}, all grant {parent_id} holds; grants never widen downward",
                    item.code
                )
            })?;
        }
        if let Some(scope) = &parent.rows {
            check(grant.rows.as_ref().is_some_and(|r| scope.covers(r)), || {
                format!(
                    "grant {parent_id} is limited to rows with {} within {}: keep the delegation within it",
                    scope.item, scope.within
                )
            })?;
        }
        Ok(())
    }

    fn revoke(&mut self, issuer: &NodeCode, id: &str) -> Result<(), String> {
        let grant = self
            .grants
            .get(id)
            .ok_or_else(|| format!("there is no grant {id}"))?;
        check(
            grant.issuer.as_ref() == Some(issuer) || &grant.producer == issuer,
            || {
                format!(
                    "only the grant's issuer or {} may revoke it",
                    grant.producer
                )
            },
        )?;
        let mut gone = vec![id.to_owned()];
        while let Some(parent) = gone.pop() {
            self.grants.remove(&parent);
            gone.extend(
                self.grants
                    .values()
                    .filter(|g| g.delegated_from.as_ref() == Some(&parent))
                    .map(|g| g.id.clone()),
            );
        }
        Ok(())
    }

    fn request_access(
        &mut self,
        issuer: &NodeCode,
        request: &AccessRequest,
        ctx: &dyn PolicyContext,
    ) -> Result<(), String> {
        check(valid_name(&request.id), || {
            format!(
                "request id {:?} must be 1-64 lowercase letters, digits or '-'",
                request.id
            )
        })?;
        check(!self.requests.contains_key(&request.id), || {
            format!("access request {} already exists", request.id)
        })?;
        check(!request.purpose.trim().is_empty(), || {
            "state the purpose of the request".into()
        })?;
        check_purpose(&request.purpose)?;
        let catalog = ctx
            .published(&request.producer, &request.catalog)
            .ok_or_else(|| {
                format!(
                    "{} has published no catalog {}",
                    request.producer, request.catalog
                )
            })?;
        check(catalog.sharing.kind == SharingType::Conditional, || {
            format!(
                "catalog {} is {}: its producer grants it without a request",
                catalog.code,
                catalog.sharing.kind.as_str()
            )
        })?;
        for item in &request.items {
            check(catalog.item_index(item).is_some(), || {
                format!("catalog {} has no shared item {item}", catalog.code)
            })?;
        }
        let unit = self.check_grantee(&request.grantee, ctx)?;
        check(&unit == issuer, || {
            format!(
                "{issuer} asks for its own roles and principals only, not for {}",
                request.grantee
            )
        })?;
        self.requests.insert(
            request.id.clone(),
            AccessRequest {
                requester: Some(issuer.clone()),
                status: AccessStatus::Pending,
                ..request.clone()
            },
        );
        Ok(())
    }

    fn pending_request(&self, issuer: &NodeCode, id: &str) -> Result<&AccessRequest, String> {
        let request = self
            .requests
            .get(id)
            .ok_or_else(|| format!("there is no access request {id}"))?;
        check(&request.producer == issuer, || {
            format!("only {} answers request {id}", request.producer)
        })?;
        check(request.status == AccessStatus::Pending, || {
            format!("request {id} was already answered")
        })?;
        Ok(request)
    }
}
