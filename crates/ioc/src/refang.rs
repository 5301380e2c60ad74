//! Refanging: undo the defanging conventions threat reports use (`hxxp`, `[.]`, ...).
