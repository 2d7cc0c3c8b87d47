//! The invite email (tenant admin guide §2.1: "an invite email with a link to set a password").

use chrono::{DateTime, Utc};

use crate::mail::Mail;

/// The invite for `name` at `to`, to tenant `tenant`, with its single-use `url`.
pub fn invite(name: &str, to: &str, tenant: &str, url: &str, expires_at: DateTime<Utc>) -> Mail {
    Mail {
        to_name: name.to_string(),
        to: to.to_string(),
        subject: format!("You are invited to {tenant}"),
        body: format!(
            "Hello {name},\n\n\
             You have been invited to the {tenant} tenant console.\n\n\
             Set your password here (the link works once, until {}):\n\n\
             {url}\n\n\
             If you did not expect this invite, ignore this message: nothing happens until the \
             link is used.\n",
            expires_at.format("%Y-%m-%d %H:%M UTC")
        ),
    }
}
