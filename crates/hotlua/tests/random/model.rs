//! A module as a tree of values, generated from a seed: version 1, the program's changes to
//! it at run time, and version 2 as an edit of version 1.

use std::collections::BTreeMap;

/// splitmix64: the whole case follows from one seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True with `percent` % probability.
    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Scalar {
    Int(i64),
    Str(String),
    Bool(bool),
}

impl Scalar {
    pub fn random(rng: &mut Rng) -> Scalar {
        match rng.below(3) {
            0 => Scalar::Int(rng.below(1000) as i64 - 100),
            1 => Scalar::Str(format!("s{}", rng.below(1000))),
            _ => Scalar::Bool(rng.chance(50)),
        }
    }

    /// Another value of the same type.
    pub fn changed(&self, rng: &mut Rng) -> Scalar {
        match self {
            Scalar::Int(n) => Scalar::Int(n + 1 + rng.below(50) as i64),
            Scalar::Str(s) => Scalar::Str(format!("{s}x")),
            Scalar::Bool(b) => Scalar::Bool(!b),
        }
    }

    /// A value of another type.
    pub fn retyped(&self, rng: &mut Rng) -> Scalar {
        loop {
            let other = Scalar::random(rng);
            if std::mem::discriminant(&other) != std::mem::discriminant(self) {
                return other;
            }
        }
    }

    /// Keep policy: the live value stays when its type is unchanged.
    pub fn merged(live: &Scalar, new: &Scalar) -> Scalar {
        if std::mem::discriminant(live) == std::mem::discriminant(new) {
            live.clone()
        } else {
            new.clone()
        }
    }
}

/// One step of a path: a field, or the metatable.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    Key(String),
    Meta,
}

pub type Path = Vec<Step>;

#[derive(Clone, Debug)]
pub enum Node {
    Data(Scalar),
    Table(Table),
    Func(Func),
    /// The table `n` levels up from the table holding this field (0: that table): a cycle.
    /// Only under keys `up<n>` and `__index`, which an edit keeps or deletes but never
    /// retargets or retypes: a table reachable at two paths whose second path changes target
    /// pairs with two live tables, which pairing by path cannot express.
    Up(usize),
}

#[derive(Clone, Debug, Default)]
pub struct Table {
    pub fields: BTreeMap<String, Node>,
    pub meta: Option<Box<Table>>,
}

impl Table {
    pub fn get(&self, step: &Step) -> Option<&Node> {
        match step {
            Step::Key(key) => self.fields.get(key),
            Step::Meta => None,
        }
    }

    /// The table at `path`, if every step is a table.
    pub fn table_at(&self, path: &[Step]) -> Option<&Table> {
        let Some((first, rest)) = path.split_first() else {
            return Some(self);
        };
        let child = match first {
            Step::Key(key) => match self.fields.get(key)? {
                Node::Table(table) => table,
                _ => return None,
            },
            Step::Meta => self.meta.as_deref()?,
        };
        child.table_at(rest)
    }

    pub fn node_at(&self, path: &[Step]) -> Option<&Node> {
        let (last, parent) = path.split_last()?;
        self.table_at(parent)?.get(last)
    }

    fn node_at_mut(&mut self, path: &[Step]) -> Option<&mut Node> {
        let (Step::Key(key), parent) = path.split_last()? else {
            return None;
        };
        let mut table = self;
        for step in parent {
            table = match step {
                Step::Key(k) => match table.fields.get_mut(k)? {
                    Node::Table(t) => t,
                    _ => return None,
                },
                Step::Meta => table.meta.as_deref_mut()?,
            };
        }
        table.fields.get_mut(key)
    }

    /// Every function, table and data field, by its tree path (cycles not followed).
    pub fn visit(&self, path: &mut Path, found: &mut dyn FnMut(&Path, &Node)) {
        for (key, node) in &self.fields {
            path.push(Step::Key(key.clone()));
            found(path, node);
            if let Node::Table(table) = node {
                table.visit(path, found);
            }
            path.pop();
        }
        if let Some(meta) = &self.meta {
            path.push(Step::Meta);
            meta.visit(path, found);
            path.pop();
        }
    }
}

#[derive(Clone, Debug)]
pub struct Func {
    /// `"v1:M.a.f"`: what the function returns when called with no arguments.
    pub tag: String,
    /// Module-level locals it captures.
    pub shared: Vec<String>,
    /// Its own local, declared in a `do` block around it: a name unique in the whole case.
    pub own: Option<(String, Scalar)>,
    /// `f("new")` returns `setmetatable({}, <the table holding f>)`.
    pub factory: bool,
}

impl Func {
    /// The locals it captures, by name.
    pub fn locals(&self) -> impl Iterator<Item = &String> {
        self.shared
            .iter()
            .chain(self.own.iter().map(|(name, _)| name))
    }
}

/// How the new file fails, if it does.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Failure {
    None,
    Syntax,
    ErrorAtEnd,
    ReturnsNumber,
    ReturnsFunction,
}

#[derive(Clone)]
pub struct Module {
    /// Module-level locals and their initial values.
    pub locals: BTreeMap<String, Scalar>,
    pub root: Table,
    pub failure: Failure,
}

impl Module {
    /// Every local a function captures, by name (names are unique in a case), with its value.
    pub fn cells(&self) -> BTreeMap<String, Scalar> {
        let mut cells = self.locals.clone();
        self.root.visit(&mut vec![], &mut |_, node| {
            if let Node::Func(Func {
                own: Some((name, value)),
                ..
            }) = node
            {
                cells.insert(name.clone(), value.clone());
            }
        });
        cells
    }

    fn set_cell(&mut self, function: &Path, name: &str, value: Scalar) {
        if let Some(shared) = self.locals.get_mut(name) {
            *shared = value;
        } else if let Some(Node::Func(func)) = self.root.node_at_mut(function) {
            func.own = Some((name.to_string(), value));
        }
    }

    /// Every function, by its tree path.
    pub fn functions(&self) -> Vec<(Path, Func)> {
        let mut functions = vec![];
        self.root.visit(&mut vec![], &mut |path, node| {
            if let Node::Func(func) = node {
                functions.push((path.clone(), func.clone()));
            }
        });
        functions
    }
}

const KEYS: [&str; 8] = ["a", "b", "c", "d", "e", "f", "g", "h"];
const MAX_DEPTH: usize = 3;

/// Draws versions: keeps the counter for unique local names.
pub struct Generator {
    pub rng: Rng,
    next_own: usize,
}

impl Generator {
    pub fn new(seed: u64) -> Generator {
        Generator {
            rng: Rng::new(seed),
            next_own: 0,
        }
    }

    pub fn first_version(&mut self, size: usize) -> Module {
        let mut locals = BTreeMap::new();
        for i in 0..self.rng.below(4) {
            locals.insert(format!("s{i}"), Scalar::random(&mut self.rng));
        }
        let shared: Vec<String> = locals.keys().cloned().collect();
        let mut path = vec![];
        let root = self.table(1, &mut path, size.max(1), &shared, true);
        Module {
            locals,
            root,
            failure: Failure::None,
        }
    }

    fn table(
        &mut self,
        version: u8,
        path: &mut Path,
        fields: usize,
        shared: &[String],
        with_meta: bool,
    ) -> Table {
        let depth = path.len();
        let mut table = Table::default();
        for _ in 0..fields {
            let key = *self.rng.pick(&KEYS);
            if table.fields.contains_key(key) {
                continue;
            }
            path.push(Step::Key(key.into()));
            let node = self.node(version, path, shared);
            path.pop();
            table.fields.insert(key.into(), node);
        }
        if depth > 0 && self.rng.chance(15) {
            let levels = self.rng.below(depth + 1);
            table.fields.insert(format!("up{levels}"), Node::Up(levels));
        }
        if with_meta && depth < MAX_DEPTH && self.rng.chance(25) {
            path.push(Step::Meta);
            let meta = self.meta(version, path, shared);
            path.pop();
            table.meta = Some(Box::new(meta));
        }
        table
    }

    /// A metatable, a class (`__index` to itself) half of the time.
    fn meta(&mut self, version: u8, path: &mut Path, shared: &[String]) -> Table {
        let fields = 1 + self.rng.below(3);
        let mut meta = self.table(version, path, fields, shared, false);
        if self.rng.chance(50) {
            meta.fields.insert("__index".into(), Node::Up(0));
        }
        meta
    }

    fn node(&mut self, version: u8, path: &mut Path, shared: &[String]) -> Node {
        let roll = self.rng.below(100);
        if roll < 35 {
            Node::Data(Scalar::random(&mut self.rng))
        } else if roll < 75 || path.len() >= MAX_DEPTH {
            Node::Func(self.func(version, path, shared, None))
        } else {
            let fields = 1 + self.rng.below(4);
            Node::Table(self.table(version, path, fields, shared, true))
        }
    }

    fn func(
        &mut self,
        version: u8,
        path: &Path,
        shared: &[String],
        old_own: Option<&(String, Scalar)>,
    ) -> Func {
        let captured = shared
            .iter()
            .filter(|_| self.rng.chance(40))
            .cloned()
            .collect();
        let own = match old_own {
            Some((name, value)) if self.rng.chance(80) => Some((
                name.clone(),
                match self.rng.below(3) {
                    0 => value.clone(),
                    1 => value.changed(&mut self.rng),
                    _ => value.retyped(&mut self.rng),
                },
            )),
            _ if self.rng.chance(40) => {
                self.next_own += 1;
                Some((format!("o{}", self.next_own), Scalar::random(&mut self.rng)))
            }
            _ => None,
        };
        Func {
            tag: format!("v{version}:{}", path_name("M", path)),
            shared: captured,
            own,
            factory: self.rng.chance(20),
        }
    }

    /// Version 2: an edit of the live module's file (`old` is version 1 as written).
    pub fn second_version(&mut self, old: &Module) -> Module {
        let mut locals = BTreeMap::new();
        for (name, value) in &old.locals {
            match self.rng.below(10) {
                0 => continue,
                1 | 2 => locals.insert(name.clone(), value.changed(&mut self.rng)),
                3 => locals.insert(name.clone(), value.retyped(&mut self.rng)),
                _ => locals.insert(name.clone(), value.clone()),
            };
        }
        if self.rng.chance(30) {
            locals.insert(
                format!("s{}", 4 + self.rng.below(2)),
                Scalar::random(&mut self.rng),
            );
        }
        let shared: Vec<String> = locals.keys().cloned().collect();
        let root = self.edit_table(&old.root, &mut vec![], &shared);
        let failure = match self.rng.below(20) {
            0 => Failure::Syntax,
            1 => Failure::ErrorAtEnd,
            2 => Failure::ReturnsNumber,
            3 => Failure::ReturnsFunction,
            _ => Failure::None,
        };
        Module {
            locals,
            root,
            failure,
        }
    }

    fn edit_table(&mut self, old: &Table, path: &mut Path, shared: &[String]) -> Table {
        let mut table = Table::default();
        for (key, node) in &old.fields {
            path.push(Step::Key(key.clone()));
            if let Some(node) = self.edit_node(node, path, shared) {
                table.fields.insert(key.clone(), node);
            }
            path.pop();
        }
        for _ in 0..self.rng.below(3) {
            let key = *self.rng.pick(&KEYS);
            if !table.fields.contains_key(key) {
                path.push(Step::Key(key.into()));
                let node = self.node(2, path, shared);
                path.pop();
                table.fields.insert(key.into(), node);
            }
        }
        path.push(Step::Meta);
        table.meta = match &old.meta {
            Some(meta) if self.rng.chance(85) => {
                Some(Box::new(self.edit_table(meta, path, shared)))
            }
            Some(_) => None,
            None if path.len() <= MAX_DEPTH && self.rng.chance(10) => {
                Some(Box::new(self.meta(2, path, shared)))
            }
            None => None,
        };
        path.pop();
        table
    }

    /// The field in version 2, or `None` when the edit deletes it.
    fn edit_node(&mut self, old: &Node, path: &mut Path, shared: &[String]) -> Option<Node> {
        let roll = self.rng.below(100);
        if roll < 10 {
            return None;
        }
        let retype = roll < 20;
        Some(match old {
            Node::Up(levels) => Node::Up(*levels),
            Node::Data(value) if retype => match self.rng.below(3) {
                0 => Node::Data(value.retyped(&mut self.rng)),
                _ => self.node(2, path, shared),
            },
            Node::Data(value) if self.rng.chance(30) => Node::Data(value.changed(&mut self.rng)),
            Node::Data(value) => Node::Data(value.clone()),
            Node::Func(_) | Node::Table(_) if retype => Node::Data(Scalar::random(&mut self.rng)),
            Node::Func(func) => Node::Func(self.func(2, path, shared, func.own.as_ref())),
            Node::Table(table) => Node::Table(self.edit_table(table, path, shared)),
        })
    }
}

/// What the program does to the module between loading it and the reload.
pub enum Change {
    /// `M.a.x = value` on a data field or a new run-time field.
    SetField(Path, Scalar),
    /// `f(name, value)`: sets a local through a function that captures it.
    SetLocal(Path, String, Scalar),
}

/// What the program keeps of the module before the reload. No closures made at run time by
/// module functions: they keep their old code (docs/semantics.md "Limitations", engine `walk`).
pub struct Program {
    pub changes: Vec<Change>,
    /// Functions stored in a program-side table.
    pub functions: Vec<Path>,
    /// Tables stored in a program-side table.
    pub tables: Vec<Path>,
    /// Factories called once each; the instance is kept.
    pub factories: Vec<Path>,
    /// A function held in a local of a suspended coroutine, and one in a program closure's
    /// upvalue.
    pub held: Option<Path>,
}

impl Generator {
    /// The program's use of `module` (version 1); applies its changes to `live`.
    pub fn program(&mut self, module: &Module, live: &mut Module) -> Program {
        let mut functions = vec![];
        let mut tables = vec![vec![]];
        let mut data = vec![];
        module
            .root
            .visit(&mut vec![], &mut |path, node| match node {
                Node::Func(func) => functions.push((path.clone(), func.clone())),
                Node::Table(_) => tables.push(path.clone()),
                Node::Data(value) => data.push((path.clone(), value.clone())),
                Node::Up(_) => {}
            });
        let mut changes = vec![];
        for _ in 0..self.rng.below(4) {
            if !data.is_empty() && self.rng.chance(60) {
                let (path, value) = self.rng.pick(&data).clone();
                let value = if self.rng.chance(80) {
                    value.changed(&mut self.rng)
                } else {
                    value.retyped(&mut self.rng)
                };
                *live.root.node_at_mut(&path).expect("data field") = Node::Data(value.clone());
                changes.push(Change::SetField(path, value));
            } else {
                let mut path = self.rng.pick(&tables).clone();
                let key = format!("r{}", self.rng.below(3));
                let value = Scalar::random(&mut self.rng);
                let table = live.root.table_at(&path).expect("table").fields.get(&key);
                if table.is_none() {
                    let parent = table_at_mut(&mut live.root, &path);
                    parent.fields.insert(key.clone(), Node::Data(value.clone()));
                    path.push(Step::Key(key));
                    changes.push(Change::SetField(path, value));
                }
            }
        }
        let with_locals: Vec<_> = functions
            .iter()
            .filter(|(_, func)| func.locals().next().is_some())
            .collect();
        for _ in 0..self.rng.below(3) {
            if with_locals.is_empty() {
                break;
            }
            let (path, func) = self.rng.pick(&with_locals);
            let names: Vec<&String> = func.locals().collect();
            let name = (*self.rng.pick(&names)).clone();
            let current = &live.cells()[&name];
            let value = if self.rng.chance(80) {
                current.changed(&mut self.rng)
            } else {
                current.retyped(&mut self.rng)
            };
            live.set_cell(path, &name, value.clone());
            changes.push(Change::SetLocal(path.clone(), name, value));
        }
        let paths: Vec<Path> = functions.iter().map(|(path, _)| path.clone()).collect();
        let factories: Vec<Path> = functions
            .iter()
            .filter(|(_, func)| func.factory)
            .map(|(path, _)| path.clone())
            .collect();
        let some = |rng: &mut Rng, from: &[Path], most: usize| -> Vec<Path> {
            if from.is_empty() {
                return vec![];
            }
            (0..rng.below(most + 1))
                .map(|_| rng.pick(from).clone())
                .collect()
        };
        Program {
            changes,
            functions: some(&mut self.rng, &paths, 3),
            tables: some(&mut self.rng, &tables, 2),
            factories: some(&mut self.rng, &factories, 2),
            held: (!paths.is_empty()).then(|| self.rng.pick(&paths).clone()),
        }
    }
}

fn table_at_mut<'a>(root: &'a mut Table, path: &[Step]) -> &'a mut Table {
    let mut table = root;
    for step in path {
        table = match step {
            Step::Key(key) => match table.fields.get_mut(key) {
                Some(Node::Table(t)) => t,
                _ => panic!("not a table"),
            },
            Step::Meta => table.meta.as_deref_mut().expect("metatable"),
        };
    }
    table
}

/// `M.a.#mt.f`: the name the snapshot gives a path.
pub fn path_name(root: &str, path: &[Step]) -> String {
    let mut name = root.to_string();
    for step in path {
        match step {
            Step::Key(key) => {
                name.push('.');
                name.push_str(key);
            }
            Step::Meta => name.push_str(".#mt"),
        }
    }
    name
}
