"""Messages: templates rendered, MIME built, unsubscribe links signed, SES and SNS feedback understood."""
